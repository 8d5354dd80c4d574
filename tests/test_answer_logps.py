"""The likelihood judge's log-probabilities serve as DPO's reference: the same numbers, read back from the round's
judgments, for the judge's own pairs only, and training with them ends where training without them does."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from peft import get_peft_model_state_dict  # noqa: E402

from sparta.backends.hf import training  # noqa: E402
from sparta.backends.hf.answer_logps import LOGP_FIELD, judged_references, round_references  # noqa: E402
from sparta.backends.hf.dpo_data import fit_pairs  # noqa: E402
from sparta.backends.hf.judges import LikelihoodJudge  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.backends.hf.reference import reference_logps  # noqa: E402
from sparta.backends.hf.training import preference_collator, train_member  # noqa: E402
from sparta.config import JudgeConfig, LoraConfig, PoolConfig, TrainingConfig  # noqa: E402
from sparta.records import CUT_BY_LENGTH, Instruction, JudgeRequest, Judgment, PreferencePair, Response  # noqa: E402
from sparta.rundir import JUDGMENTS, write_jsonl  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _own_cache(cache):
    """Every test of this module uses its own model cache."""


def _pool(dtype: str = "float32") -> ModelPool:
    members = [
        {"name": "alice", "model": "tiny-llama", "system_prompt": "You are terse."},
        {"name": "bob", "model": "tiny-llama"},
    ]
    config = PoolConfig.model_validate({"members": members, "dtype": dtype})
    pool = ModelPool(config, LoraConfig(r=4, alpha=8), seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # adapters that differ from the base, as after an earlier round
        for name, param in pool.model("alice").named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    return pool


@pytest.fixture
def pool(cache) -> ModelPool:
    return _pool()


def _pairs(n: int = 8) -> list[PreferencePair]:
    """Pairs of varied answers; the last one's chosen answer was cut by max_new_tokens (no end of turn)."""
    return [
        PreferencePair(
            prompt=f"What is {i} + {i + 1}?",
            chosen=f"The answer is {2 * i + 1}" + ("." if i < n - 1 else ", because adding"),
            rejected="Cat dog tree river the blue. " * (1 + i % 3),
            chosen_model="bob",
            rejected_model="carol",
            margin=1.0,
            instruction_id=f"q{i}",
            chosen_truncated=i == n - 1,
        )
        for i in range(n)
    ]


def _requests(judge: str, pairs: list[PreferencePair]) -> list[JudgeRequest]:
    """What a round asks ``judge`` about the pairs' answers."""
    requests = []
    for pair in pairs:
        instruction = Instruction(pair.instruction_id, pair.prompt)
        for text, cut in ((pair.chosen, pair.chosen_truncated), (pair.rejected, pair.rejected_truncated)):
            meta = {"finish": CUT_BY_LENGTH} if cut else {}
            requests.append(JudgeRequest(judge, instruction, Response(pair.instruction_id, "x", text, meta)))
    return requests


def _config(**overrides) -> TrainingConfig:
    values = {"beta": 0.1, "learning_rate": 1e-3, "epochs": 1, "batch_size": 2, "max_length": 128}
    return TrainingConfig(**{**values, **overrides})


def _judge(pool: ModelPool, requests: list[JudgeRequest], **config) -> list[Judgment]:
    return LikelihoodJudge(pool, JudgeConfig(type="likelihood", batch_size=5, **config)).score(requests)


def _fitted(pool: ModelPool, member: str, pairs: list[PreferencePair]):
    return fit_pairs(pool, member, pairs, preference_collator(pool.tokenizer(member), 128))


def test_the_judges_numbers_are_the_reference_pass_numbers(pool):
    pairs = _pairs()
    judged = judged_references(_judge(pool, _requests("alice", pairs))).get("alice", {})
    fitted = _fitted(pool, "alice", pairs)
    assert len(fitted.tokens) == len(pairs)
    inner = pool.model("alice").get_base_model()
    chosen, rejected = reference_logps(inner, fitted.tokens, pool.tokenizer("alice").pad_token_id, 4)
    for k, tokens in enumerate(fitted.tokens):
        found = training._judged_reference(tokens, judged)
        assert found is not None, f"pair {k} not found"
        assert found == pytest.approx((chosen[k], rejected[k]), abs=1e-4)
    assert fitted.tokens[-1].chosen_ids[-1] != fitted.tokens[0].chosen_ids[-1]  # the cut answer has no turn end


def test_only_the_judges_own_numbers_serve_and_only_for_its_prompt(pool):
    pairs = _pairs(4)
    judgments = _judge(pool, _requests("bob", pairs))
    assert judged_references(judgments).get("alice", {}) == {}
    bobs = judged_references(judgments).get("bob", {})
    assert len(bobs) == 2 * len(pairs)
    # bob's numbers are for bob's prompt (no system prompt): none is alice's reference
    assert all(training._judged_reference(tokens, bobs) is None for tokens in _fitted(pool, "alice", pairs).tokens)
    assert all(training._judged_reference(tokens, bobs) is not None for tokens in _fitted(pool, "bob", pairs).tokens)


def test_an_answer_cut_by_the_judge_or_bfloat16_logits_carry_no_number(pool, cache):
    requests = _requests("alice", _pairs(2))
    cut = _judge(pool, requests, max_response_tokens=3)
    assert all(LOGP_FIELD not in j.raw for j in cut) and all(j.score is not None for j in cut)
    assert all(LOGP_FIELD in j.raw for j in _judge(pool, requests))
    low = _judge(_pool("bfloat16"), requests)
    assert all(LOGP_FIELD not in j.raw for j in low) and all(j.score is not None for j in low)


def test_the_round_reads_them_back_from_its_judgments_file(pool, tmp_path):
    judgments = _judge(pool, _requests("alice", _pairs(3)))
    assert round_references(tmp_path).get("alice", {}) == {}
    write_jsonl(tmp_path / JUDGMENTS, [j.to_dict() for j in judgments])
    assert round_references(tmp_path).get("alice", {}) == judged_references(judgments).get("alice", {}) != {}


def _adapter(pool: ModelPool, member: str) -> dict[str, torch.Tensor]:
    state = get_peft_model_state_dict(pool.model(member), adapter_name=member)
    return {k: v.detach().clone() for k, v in state.items()}


def test_training_takes_the_judged_pairs_and_trains_the_same(pool, tmp_path, monkeypatch):
    counts: list[int] = []
    real = training.reference_logps

    def counted(model, tokens, pad_id, batch_size):
        counts.append(len(tokens))
        return real(model, tokens, pad_id, batch_size)

    monkeypatch.setattr(training, "reference_logps", counted)
    pairs, start = _pairs(10), tmp_path / "start"
    judged = judged_references(_judge(pool, _requests("alice", pairs[:6]))).get("alice", {})  # alice judged 6
    pool.save_adapter("alice", start)
    plain = train_member(pool, "alice", pairs, tmp_path / "plain", _config(), seed=3)
    after_plain = _adapter(pool, "alice")

    pool.load_adapter("alice", start)
    reused = train_member(pool, "alice", pairs, tmp_path / "judged", _config(), seed=3, judged=judged)
    first_step = set(training.first_step_rows(10, 3, _config()))
    assert plain["pairs_reference_reused"] == 0
    assert reused["pairs_reference_reused"] == len(set(range(6)) - first_step) > 0
    assert counts == [10 - len(first_step), 10 - len(first_step) - reused["pairs_reference_reused"]]
    assert reused["loss"] == pytest.approx(plain["loss"], abs=1e-5)
    after_reused = _adapter(pool, "alice")
    assert all(torch.allclose(after_plain[k], after_reused[k], atol=1e-5) for k in after_plain)
