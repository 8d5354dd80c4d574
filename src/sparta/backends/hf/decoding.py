"""Batched decoding where every row brings its own adapter, sampling settings, length limit, stop tokens and seed.

One loop serves the members' answers (sampled) and the generate judge (greedy): prefill, then one token per row
per step, a row leaving the batch (and its KV cache) as soon as it stops. What a row samples depends only on its
logits and its own seed (``sampling.next_tokens``); the batch around it only adds floating-point effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sparta.backends.hf.forward import CachedContext, PrefixPlan, Running
from sparta.backends.hf.sampling import next_tokens, uniform_draws

COMPACT_SHARE = 0.25
"""Finished rows are dropped from the batch once they make up this share of it."""


@dataclass(frozen=True)
class DecodeRow:
    """One request: its prompt ids, the adapter that answers, how it samples and where it stops."""

    prompt_ids: list[int]
    adapter: str
    temperature: float
    top_p: float
    max_new_tokens: int
    stop_ids: frozenset[int]
    seed: int


def decode(
    model,
    rows: Sequence[DecodeRow],
    pad_id: int,
    plan: PrefixPlan | None = None,
    contexts: Sequence[CachedContext | None] = (),
) -> list[list[int]]:
    """The new tokens of every row, up to and including its stop token (or ``max_new_tokens`` of them).

    ``plan``: the rows' prompts cut into shared prefixes (``forward.plan_prefixes``), or None for one pass;
    ``contexts``: the cached context each prompt continues (``forward.ContextCache``), if any.
    """
    adapters = [r.adapter for r in rows]
    with Running(model) as running:
        logits = running.prefill_planned([r.prompt_ids for r in rows], adapters, pad_id, 1, plan, contexts)
        return _decode_loop(running, logits[:, -1], rows)


def _decode_loop(running: Running, logits: torch.Tensor, rows: Sequence[DecodeRow]) -> list[list[int]]:
    """Sample, append, stop rows; finished rows leave the batch once they are ``COMPACT_SHARE`` of it (each
    removal copies the whole KV cache; until then a finished row is fed along and its tokens are ignored)."""
    device = logits.device
    steps = max(r.max_new_tokens for r in rows)
    draws = uniform_draws([r.seed for r in rows], steps).to(device)
    temperature = torch.tensor([r.temperature for r in rows], dtype=torch.float32, device=device)
    top_p = torch.tensor([r.top_p for r in rows], dtype=torch.float64, device=device)
    out: list[list[int]] = [[] for _ in rows]
    done = [False] * len(rows)
    active = list(range(len(rows)))  # batch position -> row
    for step in range(steps):
        index = torch.tensor(active, device=device)
        tokens = next_tokens(logits, temperature[index], top_p[index], draws[index, step])
        for row, token in zip(active, tokens.tolist()):
            if not done[row]:
                out[row].append(token)
                done[row] = token in rows[row].stop_ids or len(out[row]) == rows[row].max_new_tokens
        still = [position for position, row in enumerate(active) if not done[row]]
        if not still:
            break
        if len(active) - len(still) >= max(1, COMPACT_SHARE * len(active)):
            running.keep_rows(still)
            tokens = tokens[still]
            active = [active[p] for p in still]
        logits = running.step(tokens)
    return out
