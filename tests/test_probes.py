"""judge-check: seeded probes whose better answer is known, and the accuracy table over judges."""

from __future__ import annotations

import pytest

from sparta.records import Judgment

torch = pytest.importorskip("torch")

from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.backends.hf.probes import (  # noqa: E402
    KINDS,
    PROBE_KINDS,
    best_judge_type,
    judge_check,
    make_probes,
    pair_outcome,
)
from sparta.config import JudgeConfig, LoraConfig, PoolConfig  # noqa: E402


def test_probes_are_deterministic_per_seed():
    assert make_probes(4, seed=3) == make_probes(4, seed=3)
    assert make_probes(4, seed=3) != make_probes(4, seed=4)
    # Each kind has its own stream: asking for fewer kinds does not change the others.
    assert make_probes(4, seed=3, kinds=["truncated"]) == [p for p in make_probes(4, seed=3) if p.kind == "truncated"]


def test_every_kind_is_present_with_a_worse_answer_of_its_kind():
    probes = make_probes(6, seed=0)
    assert [p.kind for p in probes] == [k for k in KINDS for _ in range(6)]
    assert sorted(PROBE_KINDS.names()) == sorted(KINDS)
    assert len({p.id for p in probes}) == len(probes)
    for p in probes:
        assert p.instruction and p.better and p.worse and p.better != p.worse
        if p.kind == "arithmetic":
            lhs, better = p.better.rstrip(".").split(" = ")
            _, worse = p.worse.rstrip(".").split(" = ")
            assert eval(lhs) == int(better) != int(worse)  # noqa: S307 - digits and one operator, generated above
        if p.kind == "truncated":
            assert p.better.startswith(p.worse) and not p.worse.endswith(".")
        if p.kind == "repetitive":
            phrase = " ".join(p.better.split()[:3])
            assert p.worse.count(phrase) >= 6
        if p.kind in {"off_topic", "garbage"}:
            assert p.worse.split()[:2] != p.better.split()[:2]


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(KeyError, match="known: arithmetic"):
        make_probes(1, seed=0, kinds=["sarcasm"])


def _j(score: float | None) -> Judgment:
    return Judgment("j", "m", "i", score, None if score is not None else "no_score")


def test_pair_outcome():
    assert pair_outcome(_j(8), _j(3)) == 1.0
    assert pair_outcome(_j(3), _j(8)) == 0.0
    assert pair_outcome(_j(5), _j(5)) == 0.5
    assert pair_outcome(_j(None), _j(2)) == 0.5 and pair_outcome(_j(9), _j(None)) == 0.5


def test_best_judge_type_by_mean_accuracy_then_speed():
    rows = [
        {"judge_type": "generate", "overall": 0.9, "judgments_per_s": 1.0},
        {"judge_type": "generate", "overall": 0.3, "judgments_per_s": 1.0},
        {"judge_type": "likelihood", "overall": 0.7, "judgments_per_s": 5.0},
        {"judge_type": "logprob", "overall": 0.6, "judgments_per_s": 9.0},
        {"judge_type": "logprob", "overall": 0.8, "judgments_per_s": 9.0},
    ]
    assert best_judge_type(rows) == "logprob"  # 0.7 like likelihood, but faster
    with pytest.raises(ValueError, match="no judge-check rows"):
        best_judge_type([])


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> ModelPool:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("cache")))
        members = [{"name": "ann", "model": "tiny-llama"}, {"name": "ben", "model": "tiny-llama-1"}]
        return ModelPool(PoolConfig.model_validate({"members": members}), LoraConfig(r=4, alpha=8), seed=0)


def test_judge_check_table(pool):
    done = []
    types = ["generate", "logprob", "likelihood"]
    rows = judge_check(pool, types, JudgeConfig(max_new_tokens=3), n_per_kind=1, seed=0, progress=done.append)
    assert [(r["judge_type"], r["judge"]) for r in rows] == [(t, m) for t in types for m in ("ann", "ben")]
    assert sum(done) == len(types) * 2 * 2 * len(KINDS)
    for row in rows:
        assert row["judgments"] == 2 * len(KINDS)
        assert all(0.0 <= row[k] <= 1.0 for k in (*KINDS, "overall"))
        assert row["overall"] == pytest.approx(sum(row[k] for k in KINDS) / len(KINDS))
        assert row["judgments_per_s"] > 0
    generate = [r for r in rows if r["judge_type"] == "generate"]
    assert all(r["failures"] == r["judgments"] and r["overall"] == 0.5 for r in generate)  # random models write noise
    assert all(r["failures"] == 0 for r in rows if r["judge_type"] != "generate")
    assert best_judge_type(rows) in types
