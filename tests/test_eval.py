"""`sparta eval` on a real one-round tiny-llama run: format, held-out items only, determinism, resume, judge scoring."""

from __future__ import annotations

import json
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from sparta.config import load_config  # noqa: E402
from sparta.evaluation import (  # noqa: E402
    EvalSpecError,
    RoundError,
    bootstrap_mean,
    eval_table_rows,
    evaluate_run,
)
from sparta.evaluation.cache import ResultCache  # noqa: E402
from sparta.evaluation.scoring import with_reference  # noqa: E402
from sparta.evaluation.specs import EvalTaskSpec, heldout_items  # noqa: E402
from sparta.pipeline.loop import run  # noqa: E402
from sparta.records import Instruction  # noqa: E402
from sparta.rundir import read_json, read_jsonl  # noqa: E402
from sparta.tasks import load_task, split_holdout  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
OVERRIDES = [
    "run.rounds=1",
    "run.instructions_per_round=6",
    "data.options.size=60",
    "pool.sampling.max_new_tokens=16",
    "training.batch_size=8",
]
LIMIT, TOKENS = 8, 8
MEMBERS = ["terse", "careful", "playful"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine extra threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One SPARTA round of three tiny-llama members, trained, with its adapters saved."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("models")))
        out = tmp_path_factory.mktemp("run")
        run(load_config(TINY, OVERRIDES), out)
        yield out


@pytest.fixture(scope="module")
def evaluated(tiny_run) -> tuple[Path, dict]:
    """The default evaluation (rounds 0 and 1, the run's own held-out items) and its eval.json."""
    result = evaluate_run(tiny_run, None, None, LIMIT, None, max_new_tokens=TOKENS)
    assert len(result.computed) == 2 * len(MEMBERS)
    return tiny_run, read_json(tiny_run / "eval.json")


def test_eval_json_has_the_report_format(evaluated):
    run_dir, data = evaluated
    assert list(data) == ["rounds", "tasks", "scores", "best", "mean", "paired"]
    assert data["rounds"] == [0, 1] and data["tasks"] == ["procedural"]
    assert [(s["round"], s["member"]) for s in data["scores"]] == [(r, m) for r in (0, 1) for m in MEMBERS]
    for s in data["scores"]:
        assert set(s) == {"member", "round", "task", "score", "low", "high", "n"}
        assert s["n"] == LIMIT
        assert 0.0 <= s["low"] <= s["score"] <= s["high"] <= 1.0
    for r in ("0", "1"):
        best = data["best"][r]["procedural"]
        assert best["member"] in MEMBERS
        assert best["score"] == max(s["score"] for s in data["scores"] if str(s["round"]) == r)
        mean = data["mean"][r]["procedural"]
        assert mean["score"] == pytest.approx(
            sum(s["score"] for s in data["scores"] if str(s["round"]) == r) / len(MEMBERS)
        )
        assert 0.0 <= mean["low"] <= mean["score"] <= mean["high"] <= 1.0
    csv_lines = (run_dir / "eval.csv").read_text().splitlines()
    assert csv_lines[0] == "member,round,task,score,low,high,n" and len(csv_lines) == 1 + 2 * len(MEMBERS)
    for r in (0, 1):
        rows = read_jsonl(run_dir / "eval_responses" / f"round_{r:03d}" / "procedural.jsonl")
        assert [row["member"] for row in rows] == [m for m in MEMBERS for _ in range(LIMIT)]
        assert all(row["score"] in (0.0, 1.0) and row["gold"] is not None for row in rows)
        assert all(1 <= row["meta"]["new_tokens"] <= TOKENS for row in rows)


def test_round_1_is_paired_with_round_0_on_the_same_items(evaluated):
    run_dir, data = evaluated
    assert list(data["paired"]) == ["1"]
    change = data["paired"]["1"]["procedural"]
    assert change["baseline"] == 0 and list(change["members"]) == MEMBERS
    before = read_jsonl(run_dir / "eval_responses/round_000/procedural.jsonl")
    after = read_jsonl(run_dir / "eval_responses/round_001/procedural.jsonl")
    for member in MEMBERS:
        old = {r["instruction_id"]: r["score"] for r in before if r["member"] == member}
        new = {r["instruction_id"]: r["score"] for r in after if r["member"] == member}
        assert old.keys() == new.keys() and len(old) == LIMIT  # the same items in both rounds
        entry = change["members"][member]
        assert entry["n"] == LIMIT
        assert entry["diff"] == pytest.approx(sum(new[i] - old[i] for i in old) / LIMIT)
        assert entry["gained"] == sum(old[i] == 0.0 and new[i] == 1.0 for i in old)
        assert entry["lost"] == sum(old[i] == 1.0 and new[i] == 0.0 for i in old)
        assert 0.0 < entry["p_value"] <= 1.0 and entry["low"] <= entry["diff"] <= entry["high"]
    means = data["mean"]
    assert change["mean"]["diff"] == pytest.approx(
        means["1"]["procedural"]["score"] - means["0"]["procedural"]["score"]
    )
    assert change["mean"]["p_value"] is None
    best = change["best"]
    assert (best["baseline_member"], best["member"]) == (
        data["best"]["0"]["procedural"]["member"],
        data["best"]["1"]["procedural"]["member"],
    )
    assert best["diff"] == pytest.approx(
        data["best"]["1"]["procedural"]["score"] - data["best"]["0"]["procedural"]["score"]
    )


def test_evaluation_uses_only_held_out_items(evaluated):
    run_dir, _ = evaluated
    config = load_config(run_dir / "config.yaml")
    train, heldout = split_holdout(load_task("procedural", config.data.options), 0.2, config.run.seed)
    fought = {m["instruction_id"] for m in read_jsonl(run_dir / "round_001" / "matches.jsonl")}
    evaluated_ids = {row["instruction_id"] for row in read_jsonl(run_dir / "eval_responses/round_001/procedural.jsonl")}
    assert len(evaluated_ids) == LIMIT
    assert evaluated_ids <= {x.id for x in heldout if x.answer_type}
    assert not evaluated_ids & {x.id for x in train}
    assert not evaluated_ids & fought


def test_other_tasks_are_held_out_whole_but_never_repeat_combat_items(evaluated):
    config = load_config(evaluated[0] / "config.yaml")
    train, heldout = split_holdout(load_task("procedural", config.data.options), 0.2, config.run.seed)
    combat = {x.text for x in train}
    same = heldout_items(config, EvalTaskSpec(task="procedural", options=dict(config.data.options)))
    assert [x.id for x in same] == [x.id for x in heldout if x.text not in combat]
    other = EvalTaskSpec(task="procedural", options={"size": 20, "seed": 5, "domains": ["arithmetic"]})
    assert len(heldout_items(config, other)) == 20
    bigger = heldout_items(config, EvalTaskSpec(task="procedural", options={**config.data.options, "size": 120}))
    assert not {x.text for x in bigger} & combat
    assert len(bigger) > len(same)


def test_resume_recomputes_only_the_missing_cell_and_gives_the_same_result(evaluated):
    run_dir, before = evaluated
    cache = ResultCache(run_dir)
    deleted = cache.path(1, "procedural", "careful")
    old_rows = read_json(deleted)["rows"]
    untouched = {p: p.stat().st_mtime_ns for p in cache.root.rglob("*.json") if p != deleted}
    deleted.unlink()
    result = evaluate_run(run_dir, None, None, LIMIT, None, max_new_tokens=TOKENS)
    assert result.computed == [(1, "procedural", "careful")]
    assert read_json(deleted)["rows"] == old_rows
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched
    assert read_json(run_dir / "eval.json") == before


class RecordingReporter:
    """Keeps every stage's declared total and the progress it received."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, int, list[int]]] = []

    @contextmanager
    def stage(self, description: str, total: int):
        advanced: list[int] = []
        self.stages.append((description, total, advanced))
        yield advanced.append

    def log(self, message: str) -> None:
        return None


def test_a_fresh_evaluation_is_deterministic(evaluated, tmp_path):
    run_dir, before = evaluated
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval*"))
    reporter = RecordingReporter()
    result = evaluate_run(copy, [1], None, LIMIT, reporter, max_new_tokens=TOKENS)
    assert len(result.computed) == len(MEMBERS)
    assert [(d, total, sum(done)) for d, total, done in reporter.stages] == [
        ("round 1: evaluating procedural", 2 * LIMIT * len(MEMBERS), 2 * LIMIT * len(MEMBERS))
    ]
    assert [s.model_dump() for s in result.results.scores] == [s for s in before["scores"] if s["round"] == 1]
    fresh = read_jsonl(copy / "eval_responses/round_001/procedural.jsonl")
    assert fresh == read_jsonl(run_dir / "eval_responses/round_001/procedural.jsonl")


def test_a_changed_setting_makes_cached_cells_stale(evaluated, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(evaluated[0], copy)
    result = evaluate_run(copy, [0], None, LIMIT, None, max_new_tokens=4)
    assert result.computed == [(0, "procedural", m) for m in MEMBERS]
    rows = read_jsonl(copy / "eval_responses/round_000/procedural.jsonl")
    assert all(row["meta"]["new_tokens"] <= 4 for row in rows)


def test_judge_scores_open_items_on_the_unit_interval(evaluated):
    pytest.importorskip("sparta.backends.hf.judges")
    run_dir, _ = evaluated
    tasks = [
        {
            "task": "procedural",
            "options": {"size": 10, "seed": 3, "domains": ["writing"]},
            "name": "writing",
            "scorer": "judge",
            "judge": "careful",
            "limit": 3,
        },
        {
            "task": "procedural",
            "options": {"size": 10, "seed": 3, "domains": ["arithmetic"]},
            "name": "sums",
            "scorer": "judge",
            "judge": "tiny-llama",
            "limit": 3,
        },
    ]
    result = evaluate_run(run_dir, [1], tasks, None, None, max_new_tokens=4)
    assert result.results.tasks == ["writing", "sums"] and len(result.computed) == 2 * len(MEMBERS)
    for s in result.results.scores:
        assert s.n == 3 and 0.0 <= s.low <= s.score <= s.high <= 1.0
    rows = read_jsonl(run_dir / "eval_responses/round_001/writing.jsonl")
    assert all(row["gold"] is None and row["raw"] for row in rows)
    assert all(0.0 <= row["score"] <= 1.0 for row in rows)


def test_table_rows_per_round_with_best_member_and_pool_mean(evaluated):
    run_dir, _ = evaluated
    result = evaluate_run(run_dir, None, None, LIMIT, None, max_new_tokens=TOKENS)
    assert result.computed == []
    rows = eval_table_rows(result.results)
    assert [(r["round"], r["member"]) for r in rows] == [
        (r, m) for r in ("0", "1") for m in [*MEMBERS, "best member", "pool mean"]
    ]
    interval = re.compile(r"^\d\.\d\d \[\d\.\d\d, \d\.\d\d\]$")
    assert all(interval.match(r["procedural"]) for r in rows if r["member"] != "best member")
    best = [r["procedural"] for r in rows if r["member"] == "best member"]
    assert all(b.split(" ", 1)[0] in MEMBERS and interval.match(b.split(" ", 1)[1]) for b in best)


def test_unfinished_rounds_and_bad_specs_are_clear_errors(evaluated):
    run_dir, _ = evaluated
    with pytest.raises(RoundError, match=r"round\(s\) \[2\] are not completed"):
        evaluate_run(run_dir, [0, 2], None, LIMIT, None)
    with pytest.raises(RoundError, match="no rounds to evaluate"):
        evaluate_run(run_dir, [], None, LIMIT, None)
    with pytest.raises(EvalSpecError, match=r"tasks\[0\]\.judge"):
        evaluate_run(run_dir, [0], [{"task": "procedural", "scorer": "judge"}], LIMIT, None)
    with pytest.raises(EvalSpecError, match=r"tasks\[0\]\.scorer: unknown scorer 'bleu'"):
        evaluate_run(run_dir, [0], [{"task": "procedural", "scorer": "bleu"}], LIMIT, None)
    with pytest.raises(EvalSpecError, match=r"tasks\[1\]\.limit"):
        evaluate_run(run_dir, [0], [{"task": "procedural"}, {"task": "procedural", "limit": 0}], LIMIT, None)
    with pytest.raises(EvalSpecError, match="distinct 'name'"):
        evaluate_run(run_dir, [0], [{"task": "procedural"}, {"task": "procedural"}], LIMIT, None)
    writing = {"task": "procedural", "options": {"size": 5, "domains": ["writing"]}}
    with pytest.raises(EvalSpecError, match="no items with a gold answer; use scorer: judge"):
        evaluate_run(run_dir, [0], [writing], LIMIT, None)


def test_reference_answer_is_shown_to_the_judge():
    item = Instruction("q", "What is 2 + 2?", "math", "4", "number")
    assert with_reference(item).text == "What is 2 + 2?\n\n[Reference answer]\n4"
    assert with_reference(Instruction("w", "Write a haiku.")).text == "Write a haiku."


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    a, b = bootstrap_mean(values, seed=7), bootstrap_mean(values, seed=7)
    assert a == b and a.n == 8 and a.score == 0.5
    assert 0.0 <= a.low < 0.5 < a.high <= 1.0
    assert bootstrap_mean([], seed=7).score is None
    assert json.dumps(a.to_dict())
