"""DPO's reference log-probabilities: ours equal TRL's own pass and a plain forward, whatever the batching; TRL then
neither hashes the shared model nor runs a reference pass of its own; models with logit transforms get TRL's."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sparta.backends.hf import reference, training  # noqa: E402
from sparta.backends.hf.dpo_data import fit_pairs  # noqa: E402
from sparta.backends.hf.forward import common_length  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.backends.hf.reference import (  # noqa: E402
    answer_states,
    packs,
    plain_head,
    prompt_header,
    reference_logps,
    target_logps,
)
from sparta.config import LoraConfig, PoolConfig, TrainingConfig  # noqa: E402
from sparta.records import PreferencePair  # noqa: E402


@pytest.fixture
def pool(cache) -> ModelPool:
    members = [{"name": "alice", "model": "tiny-llama", "system_prompt": "You are terse."}]
    pool = ModelPool(PoolConfig.model_validate({"members": members}), LoraConfig(r=4, alpha=8), seed=0)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # an adapter that changes the answers, as after an earlier round
        for name, param in pool.model("alice").named_parameters():
            if "lora_B.alice." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return pool


def _pairs() -> list[PreferencePair]:
    """Answers of many lengths (one a single word, one cut by max_new_tokens) on prompts of several lengths."""
    texts = [
        ("The answer is 3.", "Cat dog tree river the blue."),
        ("Three", "It is 4, I think, or maybe five, or six, or seven."),
        ("one two three four five six seven eight nine ten eleven twelve", "no"),
        ("so the sum is", "Red green blue."),
    ]
    return [
        PreferencePair(
            prompt="What is 1 + 2?" + " Explain." * i,
            chosen=chosen,
            rejected=rejected,
            chosen_model="b",
            rejected_model="c",
            margin=1.0,
            instruction_id=f"q{i}",
            chosen_truncated=i == 3,
        )
        for i, (chosen, rejected) in enumerate(texts)
    ]


def _tokens(pool: ModelPool):
    collator = training.preference_collator(pool.tokenizer("alice"), None)
    return fit_pairs(pool, "alice", _pairs(), collator).tokens


def _plain_forward(model, prompt: list[int], answer: list[int]) -> float:
    """log p(answer | prompt) from one unpadded forward pass of the whole sequence, with the model's own logits."""
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    return float(logps[len(prompt) - 1 :].gather(1, ids[0, len(prompt) :, None]).sum())


def test_reference_equals_a_plain_forward_and_trls_own_pass(pool):
    inner, tokenizer = pool.model("alice").get_base_model(), pool.tokenizer("alice")
    tokens = _tokens(pool)
    assert plain_head(inner)
    chosen, rejected = reference_logps(inner, tokens, tokenizer.pad_token_id, batch_size=3)

    for pair, chosen_logp, rejected_logp in zip(tokens, chosen, rejected):
        assert chosen_logp == pytest.approx(_plain_forward(inner, pair.prompt_ids, pair.chosen_ids), abs=1e-4)
        assert rejected_logp == pytest.approx(_plain_forward(inner, pair.prompt_ids, pair.rejected_ids), abs=1e-4)

    from datasets import Dataset  # TRL's own kernel: its precompute over the same rows, without our columns

    with tempfile.TemporaryDirectory() as scratch, training.quiet_trainer():
        trainer = training._tokenized_trainer()(
            model=inner,
            args=training.dpo_config(TrainingConfig(), 0, Path(scratch), inner),
            data_collator=training.preference_collator(tokenizer, None),
            train_dataset=Dataset.from_list([pair.row() for pair in tokens]),
            processing_class=tokenizer,
        )
        theirs = trainer.train_dataset
    assert chosen == pytest.approx(theirs["ref_chosen_logps"], abs=1e-4)
    assert rejected == pytest.approx(theirs["ref_rejected_logps"], abs=1e-4)
    assert min(abs(x) for x in chosen + rejected) > 1.0  # real log-probabilities, not zeros


def test_reference_does_not_depend_on_batching(pool):
    inner, pad = pool.model("alice").get_base_model(), pool.tokenizer("alice").pad_token_id
    tokens = _tokens(pool)
    one = reference_logps(inner, tokens, pad, batch_size=1)
    for size in (2, 3, 16):
        together = reference_logps(inner, tokens, pad, batch_size=size)
        assert together[0] == pytest.approx(one[0], abs=1e-4) and together[1] == pytest.approx(one[1], abs=1e-4)
    assert not inner.training  # eval mode restored


def test_packed_sequences_give_the_padded_passes_states_without_padding(pool, monkeypatch):
    inner, pad = pool.model("alice").get_base_model(), pool.tokenizer("alice").pad_token_id
    tokens = list(_tokens(pool))
    assert packs(inner)  # tiny-llama runs under SDPA without a sliding window
    embedded: list[int] = []
    hook = inner.get_input_embeddings().register_forward_hook(lambda m, i, out: embedded.append(out.shape[:2].numel()))
    with torch.no_grad():
        packed = answer_states(inner, tokens, pad)
        monkeypatch.setattr(reference, "packs", lambda model: False)
        padded = answer_states(inner, tokens, pad)
    hook.remove()

    fed = sum(len(answer) - 1 for t in tokens for answer in (t.chosen_ids, t.rejected_ids))
    real = sum(len(t.prompt_ids) for t in tokens) + fed
    assert len(embedded) == 4 and embedded[0] + embedded[1] == real and embedded[2] + embedded[3] > real
    assert torch.equal(packed[1], padded[1]) and torch.equal(packed[2], padded[2])  # the same tokens, same order
    assert torch.allclose(packed[0], padded[0], atol=1e-5)


def test_prompts_continue_from_their_common_header_run_once(pool, monkeypatch):
    inner, pad = pool.model("alice").get_base_model(), pool.tokenizer("alice").pad_token_id
    tokens = list(_tokens(pool))
    prompts = [t.prompt_ids for t in tokens]
    with torch.no_grad():
        header = prompt_header(inner, tokens)
    assert header is not None and list(header.ids) == prompts[0][: common_length(prompts)]
    assert len(header.ids) > 5  # the template and the system prompt, at least
    embedded: list[int] = []
    hook = inner.get_input_embeddings().register_forward_hook(lambda m, i, out: embedded.append(out.shape[:2].numel()))
    after_header = reference_logps(inner, tokens, pad, batch_size=4)
    monkeypatch.setattr(reference, "prompt_header", lambda model, tokens: None)
    whole = reference_logps(inner, tokens, pad, batch_size=4)
    hook.remove()

    fed = sum(len(answer) - 1 for t in tokens for answer in (t.chosen_ids, t.rejected_ids))
    shared = len(header.ids)
    assert embedded == [shared, sum(map(len, prompts)) - len(tokens) * shared, fed, sum(map(len, prompts)), fed]
    for ours, theirs in zip(after_header, whole):
        assert ours == pytest.approx(theirs, abs=1e-4)


def test_a_header_needs_two_prompts_sharing_a_token_and_leaves_each_its_last(pool):
    inner = pool.model("alice").get_base_model()
    tokens = list(_tokens(pool))
    with torch.no_grad():
        assert prompt_header(inner, tokens[:1]) is None  # one pair: nothing to spare
        same = prompt_header(inner, [tokens[0], tokens[0]])  # identical prompts: all but the last token
        assert same is not None and list(same.ids) == tokens[0].prompt_ids[:-1]
        other = tokens[1].__class__([7, *tokens[1].prompt_ids], tokens[1].chosen_ids, tokens[1].rejected_ids)
        assert prompt_header(inner, [tokens[0], other]) is None  # nothing in common


def test_a_sliding_window_is_not_packed(pool):
    inner = pool.model("alice").get_base_model()
    inner.config.sliding_window = 8
    assert not packs(inner)


def test_a_batch_longer_than_one_packed_row_is_padded(pool, monkeypatch):
    inner, pad = pool.model("alice").get_base_model(), pool.tokenizer("alice").pad_token_id
    tokens = list(_tokens(pool))
    embedded: list[int] = []
    hook = inner.get_input_embeddings().register_forward_hook(lambda m, i, out: embedded.append(out.shape[:2].numel()))
    two = tokens[:2]
    prompts = [len(t.prompt_ids) for t in two]
    answers = sum(len(t.chosen_ids) + len(t.rejected_ids) for t in two)
    monkeypatch.setattr(reference, "PACKED_ROW", max(sum(prompts), answers))  # two pairs fit, the whole batch not
    with torch.no_grad():
        answer_states(inner, two, pad)
        answer_states(inner, tokens, pad)
    hook.remove()
    assert prompts[0] != prompts[1] and embedded[0] == sum(prompts)  # packed: nothing padded
    assert embedded[2] == len(tokens) * max(len(t.prompt_ids) for t in tokens)  # padded to the longest prompt


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    vocab=st.integers(1, 40),
    hidden=st.integers(1, 8),
    slice_rows=st.integers(1, 50),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sliced_head_equals_the_full_log_softmax(rows, vocab, hidden, slice_rows, bias, seed):
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(hidden, vocab, bias=bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(vocab, hidden, generator=generator) * 3)
        if bias:
            head.bias.copy_(torch.randn(vocab, generator=generator))
    states = torch.randn(rows, hidden, generator=generator)
    targets = torch.randint(0, vocab, (rows,), generator=generator)
    with torch.no_grad():
        expected = torch.log_softmax(head(states), dim=-1).gather(1, targets[:, None])[:, 0]
        assert torch.allclose(target_logps(states, targets, head, slice_rows), expected, atol=1e-5)


def test_trl_hashes_no_model_and_runs_no_reference_pass(pool, tmp_path, monkeypatch):
    from trl.trainer import dpo_trainer

    hashed, ran = [], []
    real_hash = dpo_trainer.hash_module
    monkeypatch.setattr(dpo_trainer, "hash_module", lambda module: hashed.append(len(module.state_dict())) or "0")
    monkeypatch.setattr(dpo_trainer.DPOTrainer, "compute_ref_log_probs", lambda *a: ran.append(1))
    config = TrainingConfig(learning_rate=1e-3, batch_size=2, max_length=128)

    metrics = training.train_member(pool, "alice", _pairs(), tmp_path / "alice", config, seed=0)

    assert metrics["steps"] == 2 and math.isfinite(metrics["loss"])
    assert hashed == [0] and not ran  # TRL hashed the empty reference slot only, and never ran its reference pass
    assert len(pool.model("alice").get_base_model().state_dict()) > 20 and real_hash is not None
    assert 0 < metrics["seconds_reference"] < metrics["seconds"]
    assert 0 < metrics["seconds_in_steps"] < metrics["seconds"]
    assert metrics["seconds_per_step"] == pytest.approx(metrics["seconds_in_steps"] / 2)


def test_logit_transforms_get_trls_own_reference_kernel(pool, tmp_path):
    """TRL's fused head soft-caps the logits of a model whose config asks for it; so must the reference, or the
    rewards at step 0 (policy == reference) would not be 0."""
    inner = pool.model("alice").get_base_model()
    inner.config.final_logit_softcapping = CAP
    assert not plain_head(inner)
    tokens = _tokens(pool)
    plain, _ = reference_logps(inner, tokens, pool.tokenizer("alice").pad_token_id, batch_size=4)
    capped = _capped_logps(inner, tokens)
    shift = sum(a - b for a, b in zip(plain, capped)) / len(plain)
    assert abs(shift) > 0.05  # with our plain head as reference, rewards/chosen at step 0 would be about this
    config = TrainingConfig(beta=1.0, batch_size=4, max_length=128)

    metrics = training.train_member(pool, "alice", _pairs(), tmp_path / "alice", config, seed=0)

    assert metrics["steps"] == 1 and metrics["seconds_reference"] > 0
    assert metrics["rewards/chosen"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["rewards/rejected"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["loss"] == pytest.approx(math.log(2), abs=1e-4)


CAP = 0.1
"""A soft-cap small enough to change tiny-llama's log-probabilities (its logits stay below 1)."""


def _capped_logps(inner, tokens) -> list[float]:
    """Chosen log-probs with the output logits soft-capped at ``CAP`` (what TRL's head computes for this config)."""
    out = []
    for pair in tokens:
        ids = torch.tensor([pair.prompt_ids + pair.chosen_ids])
        with torch.no_grad():
            logits = inner(input_ids=ids).logits[0, :-1].float()
        logps = torch.log_softmax(CAP * torch.tanh(logits / CAP), dim=-1)
        start = len(pair.prompt_ids) - 1
        out.append(float(logps[start:].gather(1, ids[0, start + 1 :, None]).sum()))
    return out
