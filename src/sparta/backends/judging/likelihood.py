"""The likelihood judge: no rating prompt, the judge's own length-normalised probability of the response.

The context is the judge's chat prompt for the instruction (its system prompt included); the scored tokens are
the response's, cut to ``judge.max_response_tokens``, followed by the turn-end token unless the response is a
prefix: cut here, or cut by its own ``max_new_tokens`` (``Response.truncated``). Ending the answer is part of
answering, but a prefix has no end to score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sparta.backends.judging.encoder import JudgeEncoder
from sparta.config import JudgeConfig
from sparta.records import JudgeRequest, Judgment


@dataclass(frozen=True)
class LikelihoodInputs:
    """Read log P(target_t | context, target_<t) for every target: ``context_ids + target_ids`` in one pass.
    ``truncated``: the targets are a prefix of the answer (no turn-end token scored); ``cut``: made one here, by
    ``judge.max_response_tokens``."""

    context_ids: list[int]
    target_ids: list[int]
    truncated: bool
    cut: bool = False


def likelihood_inputs(encoder: JudgeEncoder, request: JudgeRequest) -> LikelihoodInputs | None:
    """The ids to score, or None for an empty (blank) response: it scores 1 without a forward pass."""
    if not request.response.text.strip():
        return None
    ids, cut = encoder.response_ids(request.response)
    prefix = cut or request.response.truncated
    return LikelihoodInputs(
        context_ids=encoder.encode(encoder.chat_prompt(request.instruction.text)),
        target_ids=ids if prefix else ids + [encoder.turn_end],
        truncated=prefix,
        cut=cut,
    )


def blank_judgment(request: JudgeRequest) -> Judgment:
    """An empty answer is a valid, very bad answer: the lowest score, not a failure."""
    return Judgment.of(request, 1.0, None, json.dumps({"empty": True}))


def repeated_ngram_mask(ids: Sequence[int], n: int) -> list[bool]:
    """True for every token covered by an n-gram that already occurred earlier in ``ids`` (n >= 1)."""
    seen: set[tuple[int, ...]] = set()
    mask = [False] * len(ids)
    for start in range(len(ids) - n + 1):
        gram = tuple(ids[start : start + n])
        if gram in seen:
            mask[start : start + n] = [True] * n
        seen.add(gram)
    return mask


def likelihood_score(
    logprobs: Sequence[float], ids: Sequence[int], repeat_ngram: int = 0, min_tokens: int = 0
) -> float:
    """1 + 9 * (geometric-mean token probability), with the two optional mitigations of docs/judges.md.

    ``repeat_ngram`` > 0: tokens of repeated n-grams leave the mean and the probability is multiplied by the
    fraction of tokens kept (a phrase looped k times keeps about 1/k). ``min_tokens`` > 0: the probability is
    multiplied by min(1, tokens / min_tokens). No tokens at all score 1.
    """
    if len(logprobs) != len(ids):
        raise ValueError(f"likelihood_score: {len(logprobs)} log-probabilities for {len(ids)} tokens")
    if not ids:
        return 1.0
    repeated = repeated_ngram_mask(ids, repeat_ngram) if repeat_ngram > 0 else [False] * len(ids)
    kept = [lp for lp, r in zip(logprobs, repeated) if not r]
    if not kept:
        return 1.0
    prob = math.exp(math.fsum(kept) / len(kept)) * len(kept) / len(ids)
    if min_tokens > 0:
        prob *= min(1.0, len(ids) / min_tokens)
    return 1.0 + 9.0 * prob


def likelihood_judgment(
    request: JudgeRequest,
    inputs: LikelihoodInputs,
    logprobs: Sequence[float],
    config: JudgeConfig,
    extra: dict[str, Any] | None = None,
) -> Judgment:
    """The score from the targets' log-probabilities; ``raw`` keeps the mean, the token counts and the cut, and
    ``extra`` (what an engine adds for later stages)."""
    targets = inputs.target_ids
    score = likelihood_score(logprobs, targets, config.likelihood_repeat_ngram, config.likelihood_min_tokens)
    n = config.likelihood_repeat_ngram
    kept = len(targets) - (sum(repeated_ngram_mask(targets, n)) if n > 0 else 0)
    mean = math.fsum(logprobs) / len(logprobs)
    raw = {"mean_logprob": round(mean, 4), "tokens": len(targets), "kept": kept, "truncated": inputs.truncated}
    raw.update(extra or {})
    return Judgment.of(request, score, None, json.dumps(raw))
