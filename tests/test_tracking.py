"""Run-level tracking: a tiny run (2 rounds) and its evaluation logged to TensorBoard, W&B offline, MLflow and
Trackio, read back with each library's own reader and compared with state.json, ratings.json, training.json,
pairs.jsonl, judgments.jsonl and eval.json."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sigkill import sigkill_when
from sparta.cli import app
from sparta.config import ConfigError, load_config
from sparta.evaluation import evaluate_run
from sparta.pipeline.loop import run
from sparta.rundir import read_json, read_jsonl, round_dir
from sparta.tracking.tensorboard_writer import TensorBoardWriter
from sparta.tracking.writers import TrackerMissingError, WriterSetup
from tracking_readers import mlflow_series, tensorboard_series, trackio_series, wandb_series

ROOT = Path(__file__).resolve().parents[1]
TRACKERS = ["tensorboard", "wandb", "mlflow", "trackio"]
ROUNDS = (1, 2)
TINY = ["run.rounds=2", "run.instructions_per_round=4", "pool.sampling.max_new_tokens=8"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, cache) -> Path:
    out = tmp_path_factory.mktemp("tracked") / "tiny"
    run(load_config(ROOT / "configs" / "tiny.yaml", [*TINY, f"tracking={TRACKERS}"]), out)
    evaluate_run(out, limit=4, max_new_tokens=6)
    return out


def expected_per_round(out: Path) -> dict[str, dict[int, float]]:
    """What the run directory says, metric by metric and round by round, computed here without sparta.tracking."""
    expected: dict[str, dict[int, float]] = {}
    for r in ROUNDS:
        rd = round_dir(out, r)
        ratings = read_json(rd / "ratings.json")
        training = read_json(rd / "training.json")
        judgments = read_jsonl(rd / "judgments.jsonl")
        values = {f"rating/{m}": v for m, v in ratings["ratings"].items()}
        values.update({f"dpo/{m}/loss": e["loss"] for m, e in training["members"].items()})
        values.update({f"dpo/{m}/rewards/margins": e["rewards/margins"] for m, e in training["members"].items()})
        values.update({f"dpo/{m}/rewards/accuracies": e["rewards/accuracies"] for m, e in training["members"].items()})
        values["pairs/kept"] = len(read_jsonl(rd / "pairs.jsonl"))
        values["judge/failure_rate"] = sum(j["score"] is None for j in judgments) / len(judgments)
        values["judge/judgments"] = len(judgments)
        for name, value in values.items():
            expected.setdefault(name, {})[r] = float(value)
    return expected


def expected_eval(out: Path) -> dict[str, dict[int, float]]:
    expected: dict[str, dict[int, float]] = {}
    for row in read_json(out / "eval.json")["scores"]:
        if row["score"] is not None:
            expected.setdefault(f"eval/{row['task']}/{row['member']}", {})[row["round"]] = row["score"]
    return expected


def check_series(series: dict, out: Path, rel: float) -> None:
    """Every expected metric once per round with the run directory's value; the last ratings are state.json's."""
    evaluated = expected_eval(out) if (out / "eval.json").exists() else {}
    for name, by_round in {**expected_per_round(out), **evaluated}.items():
        logged = sorted(series[name])
        assert [step for step, _ in logged] == sorted(by_round), name  # each step exactly once
        for step, value in logged:
            assert value == pytest.approx(by_round[step], rel=rel), (name, step)
    final = read_json(out / "state.json")["reputation"]["ratings"]
    for member, rating in final.items():
        assert sorted(series[f"rating/{member}"])[-1][1] == pytest.approx(rating, rel=rel)
    for r in ROUNDS:
        strengths = [dict(series[f"bradley_terry/{m}"])[r] for m in final]
        assert sum(strengths) / len(strengths) == pytest.approx(1000.0, abs=1e-3 + 1000 * rel)  # pool mean 1000
        for stage in ("matches", "responses", "judgments", "ratings", "training"):
            assert dict(series[f"time/{stage}"])[r] > 0
    every_round_metric = [n for n in series if not n.startswith("eval/")]
    assert all(sorted(step for step, _ in series[n]) == list(ROUNDS) for n in every_round_metric)


def test_tensorboard_event_files_hold_the_run(tracked):
    series = tensorboard_series(tracked / "tracking" / "tensorboard")
    check_series(series, tracked, rel=1e-6)  # scalars are float32


def test_wandb_offline_run_holds_the_run(tracked):
    series, run_ids = wandb_series(tracked / "tracking" / "wandb")
    ledger = read_json(tracked / "tracking" / "tracking.json")
    assert set(run_ids) == {ledger["run_id"]} and len(run_ids) == 2  # the round loop, then sparta eval
    check_series(series, tracked, rel=1e-12)


def test_mlflow_store_holds_the_run(tracked):
    series, runs = mlflow_series(tracked / "tracking" / "mlflow", "tiny")
    assert runs == 1
    check_series(series, tracked, rel=1e-12)


def test_trackio_database_holds_the_run(tracked):
    ledger = read_json(tracked / "tracking" / "tracking.json")
    series = trackio_series(tracked / "tracking" / "trackio", "tiny", f"{tracked.name}-{ledger['run_id']}")
    check_series(series, tracked, rel=1e-12)


def test_ledger_records_every_round_and_evaluation(tracked):
    ledger = read_json(tracked / "tracking" / "tracking.json")
    assert set(ledger["writers"]) == set(TRACKERS)
    evaluated = {str(r) for r in read_json(tracked / "eval.json")["rounds"]}
    for entry in ledger["writers"].values():
        assert entry["rounds"] == list(ROUNDS) and set(entry["eval"]) == evaluated
    assert set(ledger["stage_seconds"]) == {"1", "2"}


def test_a_second_evaluation_logs_nothing_twice(tracked):
    before = tensorboard_series(tracked / "tracking" / "tensorboard")
    evaluate_run(tracked, limit=4, max_new_tokens=6)  # the same cells, from the evaluation cache
    after = tensorboard_series(tracked / "tracking" / "tensorboard")
    assert after == before


def test_tensorboard_hides_a_round_a_killed_process_logged_but_never_recorded(tmp_path):
    setup = WriterSetup(directory=tmp_path, project="p", name="run", run_id="x", config={}, resume_step=1)
    killed = TensorBoardWriter(setup)
    killed.log({"rating/a": 101.0}, 1, "round")
    killed.log({"rating/a": 999.0}, 2, "round")  # written, but the process died before the ledger knew
    resumed = TensorBoardWriter(WriterSetup(**{**setup.__dict__, "resume_step": 2}))
    resumed.log({"rating/a": 102.0}, 2, "round")
    resumed.close()
    assert tensorboard_series(tmp_path)["rating/a"] == [(1, 101.0), (2, 102.0)]


def test_a_round_trackio_was_given_is_on_disk_when_log_returns(tmp_path):
    """The ledger marks a round as soon as ``log`` returns, so a process killed right after must not lose it."""
    code = (
        "import os, sys; from pathlib import Path; "
        "from sparta.tracking.trackio_writer import TrackioWriter; from sparta.tracking.writers import WriterSetup; "
        "w = TrackioWriter(WriterSetup(directory=Path(sys.argv[1]), project='p', name='run', run_id='x', config={})); "
        "w.log({'rating/a': 101.0}, 1, 'round'); os._exit(0)"  # no finish: as if killed
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert trackio_series(tmp_path, "p", "run-x")["rating/a"] == [(1, 101.0)]


def test_tracking_is_checked_when_the_config_loads():
    config = load_config(None, ["tracking=tensorboard"])
    assert [t.type for t in config.tracking] == ["tensorboard"]
    config = load_config(None, ["tracking=[tensorboard, {type: wandb, offline: false, project: p}]"])
    assert [(t.type, t.offline, t.project) for t in config.tracking] == [
        ("tensorboard", True, None),
        ("wandb", False, "p"),
    ]
    with pytest.raises(ConfigError, match="did you mean 'tensorboard'"):
        load_config(None, ["tracking=[tensorbord]"])
    with pytest.raises(ConfigError, match="listed more than once"):
        load_config(None, ["tracking=[mlflow, mlflow]"])


def test_a_missing_library_names_the_extra_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trackio", None)  # how Python marks a module as not importable
    config = load_config(ROOT / "configs" / "tiny.yaml", ["tracking=[trackio]"])
    with pytest.raises(TrackerMissingError, match=r"pip install 'sparta-align\[trackio\]'"):
        run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing started
    result = CliRunner().invoke(
        app, ["run", str(ROOT / "configs" / "tiny.yaml"), "--out", str(tmp_path / "x"), "--set", "tracking=[trackio]"]
    )
    assert result.exit_code == 2 and "sparta-align[trackio]" in result.output


def test_a_killed_and_resumed_run_logs_every_round_once(tmp_path):
    """SIGKILL in round 2 (round 1 already logged), then resume: one tracked run per tracker, each round once."""
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "sparta.cli", "run", str(ROOT / "configs" / "tiny.yaml"), "--out", str(out)]
    for override in [*TINY, "pool.generation_batch_size=4", "run.instructions_per_round=6", f"tracking={TRACKERS}"]:
        args += ["--set", override]
    # as from a fresh shell: not through the W&B service this test process may hold, which would keep the killed
    # process's run open ("run ID is in use")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    # in round 2's judging: W&B writes its run file every wandb_writer.FLUSH_SECONDS, so a kill within that of
    # round 1's log (round 2's first answers can come sooner) would lose a round the ledger counts as logged
    sigkill_when(proc, out / "round_002" / "judgments.partial.jsonl", timeout=300)
    assert read_json(out / "tracking" / "tracking.json")["writers"]["tensorboard"]["rounds"] == [1]
    finished = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert finished.returncode == 0, finished.stderr
    ledger = read_json(out / "tracking" / "tracking.json")
    check_series(tensorboard_series(out / "tracking" / "tensorboard"), out, rel=1e-6)
    series, run_ids = wandb_series(out / "tracking" / "wandb")
    assert run_ids == [ledger["run_id"]] * 2  # the killed process and the resumed one, one W&B run
    check_series(series, out, rel=1e-12)
    series, runs = mlflow_series(out / "tracking" / "mlflow", "tiny")
    assert runs == 1
    check_series(series, out, rel=1e-12)
    check_series(trackio_series(out / "tracking" / "trackio", "tiny", f"{out.name}-{ledger['run_id']}"), out, rel=1e-12)
