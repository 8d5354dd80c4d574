"""Every baseline and ablation configuration runs through `sparta run` and does what its name says.

The configurations name SmolLM2; here each member is swapped for the tiny random model so the whole
set runs in seconds. Everything else (judges, pairing, aggregation, training switch) is the file's own.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sparta.config import config_from_dict, read_yaml
from sparta.pipeline.loop import run
from sparta.report.leaderboard import round_summaries
from sparta.rundir import read_json, read_jsonl

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = [
    "run.rounds=1",
    "run.instructions_per_round=4",
    "data.task=procedural",
    "data.options={size: 40, seed: 0}",
    "pool.sampling.max_new_tokens=8",
    "pool.max_prompt_tokens=256",
    "judge.batch_size=8",
    "training.learning_rate=1e-3",
]


def tiny_config(name: str, extra: list[str] = ()):
    data = read_yaml(CONFIGS / "baselines" / f"{name}.yaml")
    for member in data["pool"]["members"]:
        if "model" in member:
            member["model"] = "tiny-llama"
        if member.get("sampling"):
            member["sampling"]["max_new_tokens"] = 8
    return config_from_dict(data, name, TINY + list(extra))


def test_every_baseline_file_is_tested():
    tested = {"best-init", "self-rewarding", "uniform", "random-pairing", "pool-2", "prompted-judge", "sppo"}
    assert {p.stem for p in (CONFIGS / "baselines").glob("*.yaml")} == tested


def test_best_init_does_not_train(tmp_path):
    cfg = tiny_config("best-init")
    run(cfg, tmp_path)
    rd = tmp_path / "round_001"
    assert read_json(rd / "training.json")["skipped"] is True
    assert not (rd / "adapters").exists()


def test_self_rewarding_clones_stay_one_model(tmp_path):
    # the likelihood judge, and pairs of cut answers kept (8 new tokens rarely end an answer), so that the tiny
    # model produces pairs to train on
    cfg = tiny_config("self-rewarding", ["judge.type=likelihood", "tournament.truncated=keep"])
    assert [m.model for m in cfg.pool.members] == ["tiny-llama", "tiny-llama"]
    run(cfg, tmp_path)
    rd = tmp_path / "round_001"
    responses = read_jsonl(rd / "responses.jsonl")
    by_model = {(r["instruction_id"], r["model"]): r["text"] for r in responses}
    ids = {r["instruction_id"] for r in responses}
    assert any(by_model[(i, "self")] != by_model[(i, "self-sample2")] for i in ids), "clones must sample independently"
    judgments = read_jsonl(rd / "judgments.jsonl")
    by_judge = {}
    for j in judgments:
        by_judge.setdefault((j["instruction_id"], j["model"]), {})[j["judge"]] = j["score"]
    assert by_judge and all(set(s) == {"self", "self-sample2"} for s in by_judge.values()), "both clones judge"
    assert all(s["self"] == pytest.approx(s["self-sample2"]) for s in by_judge.values()), "clones judge alike"
    assert read_jsonl(rd / "pairs.jsonl"), "the tiny run should keep some pairs"
    a = load_file(rd / "adapters" / "self" / "adapter_model.safetensors")
    b = load_file(rd / "adapters" / "self-sample2" / "adapter_model.safetensors")
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "clones train alike"


def test_uniform_aggregation_is_the_plain_mean(tmp_path):
    cfg = tiny_config("uniform", ["tournament.judges=all"])
    run(cfg, tmp_path)
    rd = tmp_path / "round_001"
    scores = {}
    for j in read_jsonl(rd / "judgments.jsonl"):
        scores.setdefault((j["instruction_id"], j["model"]), []).append(j["score"])
    outcomes = read_jsonl(rd / "outcomes.jsonl")
    assert len(outcomes) == 4 and all(o["rated"] for o in outcomes)  # the likelihood judge never fails
    for o in outcomes:
        for side in ("a", "b"):
            expected = [s for s in scores[(o["instruction_id"], o[f"model_{side}"])] if s is not None]
            assert o[f"score_{side}"] == pytest.approx(sum(expected) / len(expected))


def test_random_pairing_ignores_the_ratings(tmp_path):
    """Run the file; its round's opponents are exactly what ratings far apart would have given: none were read."""
    from sparta.records import Match
    from sparta.seeding import derive_rng
    from sparta.tournament import make_matches

    cfg = tiny_config("random-pairing", ["tournament.truncated=keep"])  # 8 tokens: a random model never stops
    assert cfg.tournament.alpha == 1.0
    run(cfg, tmp_path / "run")
    played = [Match.from_dict(m) for m in read_jsonl(tmp_path / "run" / "round_001" / "matches.jsonl")]
    assert len(played) == 4 and read_jsonl(tmp_path / "run" / "round_001" / "pairs.jsonl")
    members = cfg.member_names()
    far_apart = {m: 100.0 + 1000.0 * i for i, m in enumerate(members)}  # with k=1, a close rival is fixed
    replayed = make_matches(
        [m.instruction for m in played], far_apart, cfg.tournament.alpha, 1, derive_rng(cfg.run.seed, 1, "matches")
    )
    assert [(m.model_a, m.model_b) for m in replayed] == [(m.model_a, m.model_b) for m in played]


def test_pool_of_two_lets_the_combatants_judge(tmp_path):
    cfg = tiny_config("pool-2")
    run(cfg, tmp_path)
    judges = {j["judge"] for j in read_jsonl(tmp_path / "round_001" / "judgments.jsonl")}
    assert judges == {"concise", "teacher"}  # the combatants judge, there is nobody else


def test_prompted_judge_excludes_and_counts_failures(tmp_path):
    cfg = tiny_config("prompted-judge")
    assert cfg.judge.type == "generate"
    run(cfg, tmp_path)
    judgments = read_jsonl(tmp_path / "round_001" / "judgments.jsonl")
    # failures are recorded with their reason, never defaulted, and the round counts them
    assert judgments
    for j in judgments:
        if j["score"] is None:
            assert j["failure"] and j["raw"] is not None
        else:
            assert 1 <= j["score"] <= 10 and j["failure"] is None
    failures = sum(j["score"] is None for j in judgments)
    assert round_summaries(tmp_path)[0]["judge_failures"] == failures
    scored = {(j["instruction_id"], j["model"]) for j in judgments if j["score"] is not None}
    outcomes = read_jsonl(tmp_path / "round_001" / "outcomes.jsonl")
    assert len(outcomes) == 4
    for o in outcomes:
        sides = {(o["instruction_id"], o["model_a"]), (o["instruction_id"], o["model_b"])}
        assert o["rated"] == (sides <= scored)  # a side no judge could score leaves the match unrated


def test_sppo_is_judged_by_the_external_judge_alone_and_trains_with_the_sppo_loss(tmp_path):
    cfg = tiny_config("sppo", ["tournament.truncated=keep"])  # 8 tokens: a random model never stops
    assert (cfg.tournament.judges, cfg.training.loss_type, cfg.judge.type) == ("external", "sppo_hard", "likelihood")
    run(cfg, tmp_path)
    rd = tmp_path / "round_001"
    matches = read_jsonl(rd / "matches.jsonl")
    judgments = read_jsonl(rd / "judgments.jsonl")
    assert {j["judge"] for j in judgments} == {"external-judge"}
    assert len(judgments) == 2 * len(matches)  # one judgment per answer: the outside judge, nobody else
    own = {(j["instruction_id"], j["model"]): j["score"] for j in judgments}
    for o in read_jsonl(rd / "outcomes.jsonl"):
        assert o["score_a"] == pytest.approx(own[(o["instruction_id"], o["model_a"])])
    pairs = read_jsonl(rd / "pairs.jsonl")
    assert pairs, "the tiny run should keep some pairs"
    assert sorted(p.name for p in (rd / "adapters").iterdir()) == sorted(cfg.member_names())  # the judge never trains
    training = read_json(rd / "training.json")["members"]
    beta = cfg.training.beta
    for member in cfg.member_names():
        assert training[member]["steps"] == 1  # at most 4 pairs, batch 4
        # the first step starts at the reference (log-ratios 0): sppo_hard's loss is (1/(2 beta))^2 twice, DPO's ln 2
        assert training[member]["loss"] == pytest.approx(2 * (0.5 / beta) ** 2, rel=1e-3)


def test_diversity_ablation_pools_differ_only_in_their_members():
    from sparta.config import load_config

    homogeneous = load_config(CONFIGS / "diversity" / "homogeneous.yaml")
    persona = load_config(CONFIGS / "diversity" / "persona.yaml")
    strip = lambda c: {k: v for k, v in c.model_dump().items() if k not in ("pool", "run")}  # noqa: E731
    assert strip(homogeneous) == strip(persona)
    same = [m.model_dump(exclude={"name"}) for m in homogeneous.pool.members]
    assert all(m == same[0] for m in same) and same[0]["system_prompt"] is None
    prompts = [m.system_prompt for m in persona.pool.members]
    assert len(set(prompts)) == len(prompts) == 4


@pytest.mark.parametrize(
    "path",
    sorted(
        p.relative_to(CONFIGS).as_posix()
        for p in CONFIGS.rglob("*.yaml")
        if p.parent.name in ("configs", "baselines", "diversity")
        and not p.name.startswith("pool-")
        and "paper" not in p.relative_to(CONFIGS).parts  # test_paper_configs: it needs the Ray and vLLM sections
    ),
)
def test_every_run_configuration_loads_its_instructions(path, monkeypatch, request):
    from sparta.config import load_config
    from sparta.pipeline.loop import combat_instructions

    cfg = load_config(CONFIGS / path)
    if "sparta-tasks" in str(cfg.data.options):
        request.getfixturevalue("shared_tasks")  # skips with the reason, or fails under CI, when they are missing
    monkeypatch.chdir(CONFIGS.parent)  # data paths are relative to the repository root
    assert len(combat_instructions(cfg)) >= cfg.run.instructions_per_round * cfg.run.rounds
