"""Next-token choice for a batch whose rows each have their own temperature, top-p and random stream.

A row's token depends on its own logits and its own uniform draw only, never on the other rows of the batch, so a
request's answer does not depend on which requests share its batch (up to the floating-point effect of padding on
the logits themselves). The draw is the inverse CDF of the row's nucleus at one uniform number per step, taken
from a generator seeded with the request's own seed (``uniform_draws``).

Per row: temperature 0 is greedy (argmax of the raw logits). Otherwise p = softmax(logits / temperature); tokens
sorted by p (descending) are kept while the probability mass *before* them is under ``top_p`` (the smallest set
reaching top_p, as transformers' ``TopPLogitsWarper``); token = the first kept token whose cumulative mass exceeds
u * (kept mass). ``top_p`` = 1 keeps the whole vocabulary. The nucleus is found among the ``TOP_K_FIRST`` most
likely tokens when they already hold ``top_p`` (one ``topk`` instead of a sort of the vocabulary), else by a full
sort of that row: both give the same set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

TOP_K_FIRST = 256
"""Candidates looked at before sorting a whole row; a peaked distribution's nucleus is far smaller."""


def uniform_draws(seeds: Sequence[int], steps: int) -> torch.Tensor:
    """(rows, steps) float64 uniforms in [0, 1): row i's come from a generator seeded with ``seeds[i]`` alone."""
    draws = torch.empty((len(seeds), steps), dtype=torch.float64)
    for row, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(seed)
        draws[row] = torch.rand(steps, generator=generator, dtype=torch.float64)
    return draws


def _inverse_cdf(sorted_probs: torch.Tensor, sorted_ids: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor):
    """Rows of descending probabilities (with their token ids): the token at mass u * kept, within the nucleus."""
    cumulative = sorted_probs.double().cumsum(-1)
    kept = (cumulative - sorted_probs.double()) < top_p.unsqueeze(-1)
    kept[:, 0] = True  # the most likely token is always kept
    kept_cumulative = torch.where(kept, cumulative, torch.zeros_like(cumulative))
    total = kept_cumulative.max(dim=-1).values
    target = (u * total).unsqueeze(-1)
    index = torch.searchsorted(kept_cumulative.cummax(-1).values, target, right=True).squeeze(-1)
    index = torch.minimum(index, kept.sum(-1) - 1)
    return sorted_ids.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def _sample_rows(probs: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Nucleus sampling of rows with top_p < 1: top-k candidates first, a full sort where they fall short."""
    k = min(TOP_K_FIRST, probs.shape[-1])
    top_probs, top_ids = probs.topk(k, dim=-1)
    tokens = _inverse_cdf(top_probs, top_ids, top_p, u)
    short = top_probs.double().sum(-1) < top_p  # the nucleus reaches beyond the k candidates
    if k < probs.shape[-1] and bool(short.any()):
        rows = short.nonzero().squeeze(-1)
        full_probs, full_ids = probs[rows].sort(dim=-1, descending=True)
        tokens[rows] = _inverse_cdf(full_probs, full_ids, top_p[rows], u[rows])
    return tokens


def _sample_whole(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """top_p = 1: the inverse CDF over the vocabulary in token-id order (no sort needed)."""
    cumulative = probs.double().cumsum(-1)
    target = (u * cumulative[:, -1]).unsqueeze(-1)
    index = torch.searchsorted(cumulative, target, right=True).squeeze(-1)
    return torch.clamp(index, max=probs.shape[-1] - 1)


def next_tokens(logits: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One token per row of ``logits`` (rows, vocab); ``temperature``, ``top_p``, ``u``: one value per row."""
    logits = logits.float()
    tokens = logits.argmax(dim=-1)
    sampled = temperature > 0
    if not bool(sampled.any()):
        return tokens
    rows = sampled.nonzero().squeeze(-1)
    probs = torch.softmax(logits[rows] / temperature[rows].unsqueeze(-1).to(logits), dim=-1)
    nucleus = top_p[rows] < 1
    chosen = torch.empty(len(rows), dtype=tokens.dtype, device=tokens.device)
    if bool(nucleus.any()):
        chosen[nucleus] = _sample_rows(probs[nucleus], top_p[rows][nucleus].double(), u[rows][nucleus])
    if not bool(nucleus.all()):
        chosen[~nucleus] = _sample_whole(probs[~nucleus], u[rows][~nucleus])
    tokens[rows] = chosen
    return tokens
