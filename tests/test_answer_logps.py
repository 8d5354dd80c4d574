"""The likelihood judge's log-probabilities serve as DPO's reference: the same numbers, only while the adapter is
unchanged, and training with them ends where training without them does."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from peft import get_peft_model_state_dict  # noqa: E402

from sparta.backends.hf import training  # noqa: E402
from sparta.backends.hf.dpo_data import fit_pairs  # noqa: E402
from sparta.backends.hf.judges import LikelihoodJudge  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.backends.hf.reference import reference_logps  # noqa: E402
from sparta.backends.hf.training import preference_collator, train_member  # noqa: E402
from sparta.config import JudgeConfig, LoraConfig, PoolConfig, TrainingConfig  # noqa: E402
from sparta.records import CUT_BY_LENGTH, Instruction, JudgeRequest, PreferencePair, Response  # noqa: E402


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


def _judge(pool: ModelPool, requests: list[JudgeRequest]) -> None:
    LikelihoodJudge(pool, JudgeConfig(type="likelihood", batch_size=5)).score(requests)


def test_the_judges_numbers_are_the_reference_pass_numbers(pool):
    pairs = _pairs()
    _judge(pool, _requests("alice", pairs))
    known = pool.answer_logps.take(pool.model("alice"), "alice")
    fitted = fit_pairs(pool, "alice", pairs, preference_collator(pool.tokenizer("alice"), 128))
    assert len(fitted.tokens) == len(pairs)
    inner = pool.model("alice").get_base_model()
    chosen, rejected = reference_logps(inner, fitted.tokens, pool.tokenizer("alice").pad_token_id, 4)
    for k, tokens in enumerate(fitted.tokens):
        found = training._known_reference(tokens, known)
        assert found is not None, f"pair {k} not found"
        assert found == pytest.approx((chosen[k], rejected[k]), abs=1e-4)
    assert fitted.tokens[-1].chosen_ids[-1] != fitted.tokens[0].chosen_ids[-1]  # the cut answer has no turn end
    assert pool.answer_logps.take(pool.model("alice"), "alice") == {}  # taken once


def test_only_the_judges_own_answers_are_kept(pool):
    pairs = _pairs(4)
    _judge(pool, _requests("bob", pairs))
    fitted = fit_pairs(pool, "alice", pairs, preference_collator(pool.tokenizer("alice"), 128))
    assert pool.answer_logps.take(pool.model("alice"), "alice") == {}
    known = pool.answer_logps.take(pool.model("bob"), "bob")
    assert len(known) > 0
    # bob's numbers are for bob's prompt (no system prompt), never alice's
    assert all(training._known_reference(tokens, known) is None for tokens in fitted.tokens)


def test_a_changed_adapter_voids_what_was_judged(pool, tmp_path):
    pairs = _pairs(4)
    _judge(pool, _requests("alice", pairs))
    with torch.no_grad():  # changed in place, as an optimizer step would
        next(p for n, p in pool.model("alice").named_parameters() if "lora_B.alice" in n).add_(1e-3)
    assert pool.answer_logps.take(pool.model("alice"), "alice") == {}

    _judge(pool, _requests("alice", pairs))
    pool.save_adapter("alice", tmp_path / "a")
    pool.load_adapter("alice", tmp_path / "a")  # the same weights, but loaded: forgotten
    assert len(pool.answer_logps) == 0


def test_bfloat16_logits_are_not_kept(cache):
    pool = _pool("bfloat16")
    _judge(pool, _requests("alice", _pairs(2)))
    assert len(pool.answer_logps) == 0


def _adapter(pool: ModelPool, member: str) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().clone() for k, v in get_peft_model_state_dict(pool.model(member), adapter_name=member).items()
    }


def test_training_after_judging_takes_the_judged_pairs_and_trains_the_same(pool, tmp_path, monkeypatch):
    counts: list[int] = []
    real = training.reference_logps

    def counted(model, tokens, pad_id, batch_size):
        counts.append(len(tokens))
        return real(model, tokens, pad_id, batch_size)

    monkeypatch.setattr(training, "reference_logps", counted)
    pairs, start = _pairs(10), tmp_path / "start"
    pool.save_adapter("alice", start)
    plain = train_member(pool, "alice", pairs, tmp_path / "plain", _config(), seed=3)
    after_plain = _adapter(pool, "alice")

    pool.load_adapter("alice", start)
    _judge(pool, _requests("alice", pairs[:6]))  # alice judged the first 6 pairs' answers
    judged = train_member(pool, "alice", pairs, tmp_path / "judged", _config(), seed=3)
    first_step = set(training.first_step_rows(10, 3, _config()))
    assert plain["pairs_reference_reused"] == 0
    assert judged["pairs_reference_reused"] == len(set(range(6)) - first_step) > 0
    assert counts == [10 - len(first_step), 10 - len(first_step) - judged["pairs_reference_reused"]]
    assert judged["loss"] == pytest.approx(plain["loss"], abs=1e-5)
    after_judged = _adapter(pool, "alice")
    assert all(torch.allclose(after_plain[k], after_judged[k], atol=1e-5) for k in after_plain)
    assert pool.answer_logps.take(pool.model("alice"), "alice") == {}  # training took them
