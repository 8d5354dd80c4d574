"""TRL's fused output head scores labelled tokens alone on a CPU, with the log-probabilities and gradients of the
full path; a DPO round projects exactly its answer tokens."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import trl.trainer.utils as trl_utils  # noqa: E402

from sparta.backends.hf.answer_head import KeptProbabilities  # noqa: E402
from sparta.backends.hf.dpo_data import fit_pairs  # noqa: E402
from sparta.backends.hf.fused_head import labelled_positions_only  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.backends.hf.training import preference_collator, train_member  # noqa: E402
from sparta.config import LoraConfig, PoolConfig, TrainingConfig  # noqa: E402


@pytest.fixture
def pool(cache) -> ModelPool:
    members = [{"name": "alice", "model": "tiny-llama"}, {"name": "bob", "model": "tiny-llama"}]
    pool = ModelPool(PoolConfig.model_validate({"members": members}), LoraConfig(r=4, alpha=8), seed=0)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a trained-looking adapter, so that its gradients are not trivially zero
        for name, param in pool.model("alice").named_parameters():
            if "lora_B.alice." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return pool


@pytest.fixture
def projected_rows(monkeypatch) -> list[int]:
    """The number of positions each call of the output head's kernel projects: TRL's fused one, or on a CPU in the
    DPO steps ours (``answer_head``); the real kernels still run."""
    rows: list[int] = []

    def count(kernel) -> None:
        forward = kernel.forward

        def counted(ctx, hidden, *args):
            rows.append(hidden.shape[0])
            return forward(ctx, hidden, *args)

        monkeypatch.setattr(kernel, "forward", staticmethod(counted))

    count(trl_utils._ChunkedLogProbFunction)
    count(KeptProbabilities)
    return rows


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three right-padded rows: a prompt (unlabelled), an answer (labelled), then padding."""
    generator = torch.Generator().manual_seed(0)
    lengths, prompts = [12, 9, 5], [4, 6, 2]
    ids = torch.randint(3, 200, (3, 12), generator=generator)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, (length, prompt) in enumerate(zip(lengths, prompts)):
        mask[row, :length] = 1
        labels[row, prompt:length] = ids[row, prompt:length]
    return ids, mask, labels


def _scores(inner, ids, mask, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    inner.zero_grad()
    out = inner(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    out.log_probs.sum().backward()
    grads = {name: p.grad.clone() for name, p in inner.named_parameters() if p.grad is not None}
    return out.log_probs.detach(), grads


def test_the_head_projects_labelled_positions_only_with_the_same_scores_and_gradients(pool, projected_rows):
    peft_model = pool.model("alice")
    peft_model.set_adapter("alice")
    inner = peft_model.get_base_model()
    trl_utils.add_fused_lm_head(inner, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    ids, mask, labels = _batch()
    labelled = int((labels[:, 1:] != -100).sum())

    full, full_grads = _scores(inner, ids, mask, labels)
    with labelled_positions_only():
        compact, compact_grads = _scores(inner, ids, mask, labels)
    again, _ = _scores(inner, ids, mask, labels)

    assert projected_rows == [3 * 11, labelled, 3 * 11]  # every position, the labelled ones, every position again
    assert labelled < 3 * 11 / 2
    assert torch.allclose(compact, full, atol=1e-5, rtol=0) and torch.equal(again, full)
    assert bool((compact[labels[:, 1:] == -100] == 0).all())
    assert full_grads.keys() == compact_grads.keys() and any("lora_A.alice" in name for name in full_grads)
    for name, grad in full_grads.items():
        assert torch.allclose(compact_grads[name], grad, atol=1e-5, rtol=1e-4), name


def test_the_switch_is_put_back_even_after_an_error():
    original = trl_utils._use_triton
    with pytest.raises(RuntimeError, match="inside"), labelled_positions_only():
        assert trl_utils._use_triton(torch.device("cpu"))
        raise RuntimeError("inside")
    assert trl_utils._use_triton is original and not trl_utils._use_triton(torch.device("cpu"))


def test_a_dpo_round_projects_exactly_its_answer_tokens(pool, projected_rows, tmp_path, varied_pairs):
    pairs = varied_pairs(4)
    training = TrainingConfig(beta=0.1, learning_rate=1e-3, epochs=1, batch_size=2, max_length=256)
    tokenizer = pool.tokenizer("alice")
    fitted = fit_pairs(pool, "alice", pairs, preference_collator(tokenizer, training.max_length))
    answer_tokens = sum(len(t.chosen_ids) + len(t.rejected_ids) for t in fitted.tokens)

    metrics = train_member(pool, "alice", pairs, tmp_path / "alice", training, seed=0)

    assert metrics["steps"] == 2 and len(projected_rows) == 2
    assert sum(projected_rows) == answer_tokens
    assert trl_utils._use_triton is not None and not trl_utils._use_triton(torch.device("cpu"))
