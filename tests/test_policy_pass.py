"""DPO's policy pass with each prompt run once: TRL's per-token outputs and gradients on fewer positions; batches of
another shape go to TRL's own forward; a member trains to the same adapter either way."""

from __future__ import annotations

import contextlib
import types

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from peft import get_peft_model_state_dict  # noqa: E402
from trl.trainer.utils import add_fused_lm_head  # noqa: E402

from sparta.backends.hf import training  # noqa: E402
from sparta.backends.hf.dpo_data import fit_pairs  # noqa: E402
from sparta.backends.hf.policy_pass import OUTPUTS, pairs_of, sharing_prompts  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.config import LoraConfig, PoolConfig, TrainingConfig  # noqa: E402
from sparta.records import PreferencePair  # noqa: E402


@pytest.fixture
def pool(cache) -> ModelPool:
    members = [{"name": "alice", "model": "tiny-llama", "system_prompt": "You are terse."}]
    pool = ModelPool(PoolConfig.model_validate({"members": members}), LoraConfig(r=4, alpha=8), seed=0)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():  # an adapter as after an earlier round, so that every gradient is non-trivial
        for name, param in pool.model("alice").named_parameters():
            if "lora_B.alice." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return pool


def _trl_batch(pool: ModelPool, pairs: list[PreferencePair]) -> tuple[dict[str, torch.Tensor], list]:
    """The batch TRL's DPO loss hands the model: the collator's rows, labels where the completion is."""
    collator = training.preference_collator(pool.tokenizer("alice"), None)
    fitted = fit_pairs(pool, "alice", pairs, collator)
    batch = collator([tokens.row() for tokens in fitted.tokens])
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
    return {**inputs, "labels": labels}, fitted.tokens


@pytest.fixture
def inner(pool):
    peft_model = pool.model("alice")
    peft_model.set_adapter("alice")
    model = peft_model.get_base_model()
    add_fused_lm_head(model, outputs=OUTPUTS)  # what TRL's DPOTrainer does to the model it trains
    return model


@pytest.fixture
def embedded(inner) -> list[int]:
    """How many positions (padding included) the backbone runs, call by call."""
    counts: list[int] = []
    handle = inner.get_input_embeddings().register_forward_hook(lambda m, i, out: counts.append(out.shape[:2].numel()))
    yield counts
    handle.remove()


def _run(model, batch, shared: bool):
    trainer = types.SimpleNamespace(model=model, use_weighting=False)
    model.zero_grad()
    with sharing_prompts(trainer) if shared else contextlib.nullcontext():
        out = model(**batch, fused_lm_head=True)
    out.log_probs.sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out, grads


def test_pairs_are_read_back_from_the_collators_batch(pool, varied_pairs):
    batch, tokens = _trl_batch(pool, varied_pairs(3))
    assert pairs_of(batch["input_ids"], batch["attention_mask"], batch["labels"]) == list(tokens)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    swapped = torch.cat([ids[:1], ids[2:3], ids[1:2], ids[3:]])  # chosen rows of pairs 1 and 2 exchanged
    assert pairs_of(swapped, mask, labels) is None
    assert pairs_of(ids[:-1], mask[:-1], labels[:-1]) is None  # an odd number of rows
    assert pairs_of(ids.flip(-1), mask.flip(-1), labels.flip(-1)) is None  # left padding
    unlabelled = labels.clone()
    unlabelled[0] = -100
    assert pairs_of(ids, mask, unlabelled) is None


def test_each_prompt_runs_once_with_trls_outputs_and_gradients(inner, embedded, pool, varied_pairs):
    batch, _ = _trl_batch(pool, varied_pairs(3))
    trl_forward = inner.__dict__["forward"]
    theirs, their_grads = _run(inner, batch, shared=False)
    trl_positions = sum(embedded)
    ours, our_grads = _run(inner, batch, shared=True)
    our_positions = sum(embedded) - trl_positions

    assert trl_positions == batch["input_ids"].numel() and our_positions < 0.8 * trl_positions
    label_mask = batch["labels"][:, 1:] != -100
    assert torch.equal(ours.label_mask, label_mask)
    for field in ("log_probs", "entropy", "mean_logits"):
        mine, trls = getattr(ours, field), getattr(theirs, field)
        assert mine.shape == trls.shape and bool((mine[~label_mask] == 0).all()), field
        assert torch.allclose(mine, trls, atol=1e-4, rtol=1e-5), field
    assert torch.equal(ours.is_top1, theirs.is_top1) and torch.allclose(ours.loss, theirs.loss, atol=1e-5)
    assert our_grads.keys() == their_grads.keys() and any("lora_A.alice" in name for name in our_grads)
    for name, grad in their_grads.items():
        assert torch.allclose(our_grads[name], grad, atol=1e-4, rtol=1e-3), name
    assert inner.__dict__["forward"] is trl_forward  # TRL's forward is back


def test_a_batch_of_another_shape_goes_to_trls_forward(inner, embedded, pool, varied_pairs):
    batch, _ = _trl_batch(pool, varied_pairs(3))
    order = torch.tensor([0, 1, 2, 4, 5, 3])  # each chosen answer beside another prompt's rejected one
    batch = {key: value[order] if key != "use_cache" else value for key, value in batch.items()}
    assert pairs_of(batch["input_ids"], batch["attention_mask"], batch["labels"]) is None
    theirs, _ = _run(inner, batch, shared=False)
    ours, _ = _run(inner, batch, shared=True)
    assert embedded == [batch["input_ids"].numel()] * 2
    assert torch.equal(ours.log_probs, theirs.log_probs)


def test_a_member_trains_to_the_same_adapter_with_each_prompt_run_once(cache, tmp_path, monkeypatch, varied_pairs):
    config = TrainingConfig(beta=0.1, learning_rate=1e-3, epochs=2, batch_size=2, max_length=256)
    adapters, losses = [], []
    for shared in (True, False):
        pool = ModelPool(
            PoolConfig.model_validate({"members": [{"name": "alice", "model": "tiny-llama"}]}),
            LoraConfig(r=4, alpha=8, dropout=0.0),
            seed=0,
        )
        if not shared:
            monkeypatch.setattr(training, "sharing_prompts", lambda trainer: contextlib.nullcontext())
        metrics = training.train_member(pool, "alice", varied_pairs(4), tmp_path / str(shared), config, seed=0)
        adapters.append(get_peft_model_state_dict(pool.model("alice"), adapter_name="alice"))
        losses.append(metrics["loss"])
        assert metrics["steps"] == 4
    assert abs(losses[0] - losses[1]) < 1e-5
    assert adapters[0].keys() == adapters[1].keys()
    for key, value in adapters[0].items():
        assert torch.allclose(value, adapters[1][key], atol=1e-5), key
    moved = max(float(value.abs().max()) for key, value in adapters[0].items() if "lora_B" in key)
    assert moved > 1e-4  # the adapters were trained (lora_B starts at zero)
