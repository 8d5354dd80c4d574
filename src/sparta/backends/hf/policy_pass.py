"""DPO's policy pass in the optimizer steps: each prompt once, both answers continuing from its KV cache.

TRL 1.16's ``DPOTrainer`` runs a batch of pairs as rows prompt + chosen, then rows prompt + rejected, right-padded
to the longest row, through the model's forward with its fused output head (``trl.trainer.utils.add_fused_lm_head``).
Every prompt is computed twice and every row is padded to the batch's longest prompt + answer: on
``benchmarks/dpo_cost.py``'s pairs, in batches of 4, the second copy of the prompts was 22 % of a batch's positions
and padding 23 %.

:func:`sharing_prompts` swaps, for the optimizer steps, the forward TRL calls for one that reads the same batch as
pairs: each prompt runs once, both answers continue from its KV cache, and under SDPA attention the batch's
sequences are packed without padding (``reference.answer_states``, the pass that gives the reference
log-probabilities, here recording gradients, which flow into the prompt through its cache); the answer tokens'
states go to the output head (``answer_head``: on a CPU the probabilities kept for the backward pass, elsewhere TRL's
own fused-head kernel). It returns what TRL's forward returns: per-token log-probabilities, and
the entropy, mean logit and top-1 flag its metrics read, at the labelled positions of the rows TRL built, zero
elsewhere. TRL's loss (every loss type), its metrics and its backward read it unchanged; the numbers are those of
TRL's path up to floating-point rounding (its causal mask already kept each answer from seeing the other, and
padding from being seen). A batch of any other shape (rows that are not two answers to the same prompts, shifted
labels, extra inputs, router logits, activation checkpointing) goes to TRL's forward as before.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from sparta.backends.hf.answer_head import answer_token_outputs
from sparta.backends.hf.dpo_data import PairTokens
from sparta.backends.hf.reference import answer_states, plain_head

BATCH_INPUTS = {"input_ids", "attention_mask", "use_cache"}
"""What TRL's DPO loss hands the model besides the head's own arguments; anything more goes to TRL's forward."""

CHECKPOINTING_FLAGS = ("is_activation_checkpointing", "is_gradient_checkpointing")
"""transformers 5's name for activation checkpointing being on, then 4's (deprecated in 5)."""

OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1")
"""The per-token fields TRL 1.16's ``DPOTrainer`` asks its fused head for (``log_sum_sq_probs`` too when it
weights pairs, WPO)."""


def pairs_of(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> list[PairTokens] | None:
    """The batch as TRL's preference collator builds it, read back as pairs; None if it is not of that shape.

    Expected: 2 x pairs rows, the chosen answers' then the rejected answers' in the same pair order; each row a
    prompt (unlabelled), its answer (labelled), then right padding (attention 0, unlabelled); a pair's two rows
    begin with the same prompt.
    """
    rows, width = input_ids.shape
    if rows % 2:
        return None
    ids, attended, labelled = input_ids.tolist(), attention_mask.bool().tolist(), (labels != -100).tolist()
    spans = []
    for row in range(rows):
        length = sum(attended[row])
        start = labelled[row].index(True) if True in labelled[row] else 0
        expected = [False] * start + [True] * (length - start) + [False] * (width - length)
        if start == 0 or labelled[row] != expected or attended[row] != [True] * length + [False] * (width - length):
            return None
        spans.append((start, length))
    half, pairs = rows // 2, []
    for chosen, rejected in zip(range(half), range(half, rows)):
        (c_start, c_end), (r_start, r_end) = spans[chosen], spans[rejected]
        if ids[chosen][:c_start] != ids[rejected][:r_start]:
            return None
        pairs.append(PairTokens(ids[chosen][:c_start], ids[chosen][c_start:c_end], ids[rejected][r_start:r_end]))
    return pairs


def _placed(valid: torch.Tensor, pairs: list[PairTokens]) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) in TRL's shifted (rows, width - 1) layout of each valid answer token, in ``valid``'s order."""
    answer, index = valid.nonzero(as_tuple=True)
    half = len(pairs)
    row = answer // 2 + (answer % 2) * half  # answers alternate chosen, rejected; TRL's rows are chosen then rejected
    prompt_lengths = torch.tensor([len(p.prompt_ids) for p in pairs], device=valid.device)
    return row, prompt_lengths[answer // 2] - 1 + index


def _shared_forward(model: torch.nn.Module, labels: torch.Tensor, pairs: list[PairTokens], outputs: tuple[str, ...]):
    from trl.trainer.utils import FusedCausalLMOutput

    states, targets, valid = answer_states(model, pairs, pad_id=0)
    values = answer_token_outputs(states, model.get_output_embeddings(), targets, outputs)
    row, column = _placed(valid, pairs)
    shape = (labels.shape[0], labels.shape[1] - 1)

    def spread(value: torch.Tensor | None) -> torch.Tensor | None:
        return None if value is None else value.new_zeros(shape).index_put((row, column), value)

    log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = map(spread, values)
    label_mask = labels[:, 1:] != -100
    return FusedCausalLMOutput(
        loss=-log_probs.sum() / label_mask.sum().clamp(min=1),
        log_probs=log_probs,
        entropy=entropy,
        log_sum_sq_probs=log_sum_sq_probs,
        mean_logits=mean_logits,
        is_top1=is_top1,
        label_mask=label_mask,
    )


def _forward(trl_forward: Any, outputs: tuple[str, ...]) -> Any:
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        pairs = None
        if fused_lm_head and not args and labels is not None and shift_labels is None and num_items_in_batch is None:
            if set(kwargs) <= BATCH_INPUTS and kwargs.get("attention_mask") is not None:
                pairs = pairs_of(kwargs["input_ids"], kwargs["attention_mask"], labels)
        if pairs is None:
            extra = {"shift_labels": shift_labels, "num_items_in_batch": num_items_in_batch}
            extra = {key: value for key, value in extra.items() if value is not None}
            return trl_forward(*args, fused_lm_head=fused_lm_head, labels=labels, **extra, **kwargs)
        return _shared_forward(self, labels, pairs, outputs)

    return forward


def _applies(model: torch.nn.Module) -> bool:
    text_config = model.config.get_text_config()
    patched = "forward" in model.__dict__  # TRL's fused head is an attribute of the model it trains
    flag = next((name for name in CHECKPOINTING_FLAGS if hasattr(type(model), name)), None)
    checkpointing = bool(flag and getattr(model, flag))
    return patched and plain_head(model) and not checkpointing and not getattr(text_config, "output_router_logits", 0)


@contextmanager
def sharing_prompts(trainer: Any) -> Iterator[None]:
    """While active, ``trainer`` (TRL's ``DPOTrainer``, built) runs each prompt of a batch once (module docstring).

    Enter it after the trainer is built (TRL patches the model's forward then) and before ``train()`` (so that
    accelerate's autocast, under mixed precision, wraps this forward); the trainer's forward returns afterwards.
    """
    model = trainer.model
    if not _applies(model):
        yield
        return
    outputs = OUTPUTS + (("log_sum_sq_probs",) if getattr(trainer, "use_weighting", False) else ())
    trl_forward = model.__dict__["forward"]
    model.forward = types.MethodType(_forward(trl_forward, outputs), model)
    try:
        yield
    finally:
        model.forward = trl_forward
