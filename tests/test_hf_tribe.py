"""The HF tribe on configs/tiny.yaml: answering, judging, training every member and restoring a round."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sparta.backends.base import build_tribe  # noqa: E402
from sparta.backends.hf.tribe import ADAPTERS, HFTribe  # noqa: E402
from sparta.config import load_config  # noqa: E402
from sparta.records import Instruction, JudgeRequest, PreferencePair  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def tribe(tmp_path_factory) -> HFTribe:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("cache")))
        tribe = build_tribe(load_config(TINY))
    assert isinstance(tribe, HFTribe)
    return tribe


def _instructions() -> list[Instruction]:
    return [Instruction("add", "What is 12 + 30?", "math"), Instruction("poem", "Write a line about rivers.")]


def test_tiny_config_builds_one_shared_base(tribe):
    assert tribe.members == ["terse", "careful", "playful"]
    assert [(name, members) for name, _, members in tribe.pool.bases()] == [("tiny-llama", tribe.members)]
    assert tribe.pool.sampling("terse").temperature != tribe.pool.sampling("playful").temperature


def test_generate_answers_every_request_in_order(tribe):
    requests = [(m, x) for x in _instructions() for m in tribe.members]
    done: list[int] = []
    first = tribe.generate(requests, seed=3, progress=done.append)
    assert [(r.model, r.instruction_id) for r in first] == [(m, x.id) for m, x in requests]
    assert sum(done) == len(requests)
    assert all(1 <= r.meta["new_tokens"] <= 24 for r in first)
    assert [r.text for r in tribe.generate(requests, seed=3)] == [r.text for r in first]


def test_judge_scores_with_the_configured_judge(tribe):
    pytest.importorskip("sparta.backends.hf.judges")
    response = tribe.generate([("terse", _instructions()[0])], seed=0)[0]
    requests = [JudgeRequest(judge, _instructions()[0], response) for judge in ("careful", "playful")]
    judgments = tribe.judge(requests)
    assert [(j.judge, j.model) for j in judgments] == [("careful", "terse"), ("playful", "terse")]
    assert all(j.score is not None and 1 <= j.score <= 10 for j in judgments)


def test_train_saves_every_member_and_load_round_restores_them(tribe, tmp_path):
    pytest.importorskip("sparta.backends.hf.training")
    pytest.importorskip("trl")
    responses = tribe.generate([(m, x) for x in _instructions() for m in ("terse", "careful")], seed=1)
    by_key = {(r.instruction_id, r.model): r.text for r in responses}
    pairs = [
        PreferencePair(
            x.text, by_key[(x.id, "terse")] or "ok", by_key[(x.id, "careful")] or "no", "terse", "careful", 1.0, x.id
        )
        for x in _instructions()
    ]
    before = {m: _adapter_vector(tribe, m) for m in tribe.members}
    metrics = tribe.train(pairs, tmp_path, seed=0)
    assert metrics["pairs"] == 2 and sorted(metrics["members"]) == sorted(tribe.members)
    trained = {m: _adapter_vector(tribe, m) for m in tribe.members}
    for member in tribe.members:
        assert (tmp_path / ADAPTERS / member / "adapter_model.safetensors").is_file()
        assert not torch.equal(trained[member], before[member])

    with torch.no_grad():  # scramble the pool, then restore the round
        for _, model, _members in tribe.pool.bases():
            for name, p in model.named_parameters():
                if "lora_" in name:
                    p.normal_()
    tribe.load_round(tmp_path)
    for member in tribe.members:
        assert torch.equal(_adapter_vector(tribe, member), trained[member])


def test_load_round_names_missing_adapters(tribe, tmp_path):
    with pytest.raises(FileNotFoundError, match="no adapter for members"):
        tribe.load_round(tmp_path)


def _adapter_vector(tribe: HFTribe, member: str) -> torch.Tensor:
    model = tribe.pool.model(member)
    return torch.cat([p.detach().flatten().clone() for n, p in model.named_parameters() if f".{member}." in n])
