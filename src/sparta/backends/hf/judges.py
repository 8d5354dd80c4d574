"""Judges on the Hugging Face engine: batched forward passes over the token ids ``sparta.backends.judging`` builds.

Every pool member scores responses 1..10 as itself (its adapter, tokenizer, chat template, system prompt).
Three ways to read a score out of a language model, chosen by ``judge.type``:

- ``generate``   the paper's pointwise judge: the judge writes ``{"score": N}`` (greedy) and the reply is parsed;
                 an unreadable reply is a failed judgment (excluded and counted, never defaulted);
- ``logprob``    the same prompt, pre-filled up to the score: the expected score under the judge's renormalised
                 next-token distribution over 1..10; one forward pass, never fails;
- ``likelihood`` no prompt at all: the judge's own geometric-mean probability of the response tokens as an
                 answer to the instruction, mapped onto 1..10. Small models judge far better this way.

What is scored and how raw numbers become a judgment live in ``sparta.backends.judging`` (any engine); this
module only computes: requests are grouped by judge member, sorted by length and batched (``judge.batch_size``),
left-padded with position ids restarting on every row; output order follows input order. See docs/judges.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from sparta.backends.base import Progress
from sparta.backends.judging import (
    PREFIX_VARIANTS,
    JudgeEncoder,
    LikelihoodInputs,
    ScoreReading,
    ScoreTokens,
    blank_judgment,
    generate_inputs,
    generate_judgment,
    likelihood_inputs,
    likelihood_judgment,
    likelihood_score,
    logprob_inputs,
    logprob_judgment,
    member_score_tokens,
    repeated_ngram_mask,
)
from sparta.config import JudgeConfig
from sparta.records import JudgeRequest, Judgment

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool

__all__ = [
    "GenerateJudge",
    "Judge",
    "LikelihoodJudge",
    "LogprobJudge",
    "likelihood_score",
    "repeated_ngram_mask",
    "turn_end_id",
]


def _quiet(_: int) -> None:
    return None


class Judge(Protocol):
    """Scores each request 1..10 as ``request.judge`` sees it; one judgment per request, in order."""

    def score(self, requests: Sequence[JudgeRequest], progress: Progress = _quiet) -> list[Judgment]: ...


JudgeFactory = Callable[["ModelPool", JudgeConfig], Judge]


# --------------------------------------------------------------------------------------------- shared machinery


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Left-padded ids, attention mask and position ids (positions restart at 0 on every row's first real token)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has neither a pad nor an eos token")
    return int(pad)


def encoder_for(pool: ModelPool, member: str, judge: JudgeConfig) -> JudgeEncoder:
    """``member`` as a judge: its tokenizer, chat template and system prompt."""
    return JudgeEncoder(pool.member_config(member), pool.tokenizer(member), judge)


def turn_end_id(pool: ModelPool, member: str) -> int:
    """The token that closes an assistant turn in ``member``'s chat template (``<|im_end|>``, ``<|eot_id|>``...)."""
    return encoder_for(pool, member, JudgeConfig()).turn_end


def _batches(requests: Sequence[JudgeRequest], batch_size: int) -> Iterator[tuple[str, list[int]]]:
    """(judge member, request indices) batches: one member per batch, similar lengths together."""
    by_judge: dict[str, list[int]] = defaultdict(list)
    for i, request in enumerate(requests):
        by_judge[request.judge].append(i)
    for member, indices in by_judge.items():
        indices.sort(key=lambda i: len(requests[i].instruction.text) + len(requests[i].response.text))
        for start in range(0, len(indices), batch_size):
            yield member, indices[start : start + batch_size]


class _BatchedJudge:
    """Runs ``_score_batch`` over one-member batches and puts the judgments back in request order."""

    def __init__(self, pool: ModelPool, judge: JudgeConfig) -> None:
        self.pool = pool
        self.config = judge
        self._encoders: dict[str, JudgeEncoder] = {}

    def encoder(self, member: str) -> JudgeEncoder:
        if member not in self._encoders:
            self._encoders[member] = encoder_for(self.pool, member, self.config)
        return self._encoders[member]

    def score(self, requests: Sequence[JudgeRequest], progress: Progress = _quiet) -> list[Judgment]:
        results: list[Judgment | None] = [None] * len(requests)
        for member, indices in _batches(requests, self.config.batch_size):
            model = self.pool.model(member)
            model.eval()
            with torch.inference_mode():
                judged = self._score_batch(member, model, [requests[i] for i in indices])
            for i, judgment in zip(indices, judged, strict=True):
                results[i] = judgment
            progress(len(indices))
        return [j for j in results if j is not None]

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- generate


class GenerateJudge(_BatchedJudge):
    """The judge writes its verdict (greedy, ``judge.max_new_tokens``); ``parse_score`` reads it."""

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        from transformers import GenerationConfig

        encoder = self.encoder(member)
        inputs = [generate_inputs(encoder, r) for r in requests]
        pad = _pad_id(encoder.tokenizer)
        ids, mask, _ = _left_pad([x.prompt_ids for x in inputs], pad, _device(model))
        greedy = GenerationConfig(
            do_sample=False,
            max_new_tokens=self.config.max_new_tokens,
            eos_token_id=list(encoder.stop_ids),
            pad_token_id=pad,
        )
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=greedy)
        texts = encoder.tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        return [generate_judgment(r, text) for r, text in zip(requests, texts, strict=True)]


# --------------------------------------------------------------------------------------------- logprob


class LogprobJudge(_BatchedJudge):
    """Expected score from one forward pass over the judge prompt pre-filled with ``{"score": ``.

    When "10" is "1" + "0" the pass also carries the "1" token: causal attention leaves the logits before it
    unchanged, so one pass gives both P(first token) and P(next token | "1") (docs/judges.md).
    """

    def __init__(self, pool: ModelPool, judge: JudgeConfig, variants: Sequence[tuple[str, str]] = PREFIX_VARIANTS):
        super().__init__(pool, judge)
        self.variants = tuple(variants)
        self._tokens: dict[str, ScoreTokens] = {}
        self._masks: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def tokens(self, member: str) -> ScoreTokens:
        """The member's score tokens, found once."""
        if member not in self._tokens:
            self._tokens[member] = member_score_tokens(self.encoder(member), self.variants)
        return self._tokens[member]

    def _digit_masks(self, member: str, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """("0" tokens, digit tokens) as masks over the model's output vocabulary."""
        if member not in self._masks:
            tokens = self.tokens(member)
            zero = torch.zeros(vocab_size, dtype=torch.bool)
            digit = torch.zeros(vocab_size, dtype=torch.bool)
            zero[[i for i in tokens.zero_ids if i < vocab_size]] = True
            digit[[i for i in tokens.digit_ids if i < vocab_size]] = True
            self._masks[member] = zero, digit
        return self._masks[member]

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        encoder, tokens = self.encoder(member), self.tokens(member)
        inputs = [logprob_inputs(encoder, tokens, r) for r in requests]
        keep = 2 if tokens.split_ten else 1
        seqs = [x.after_one_ids or x.prompt_ids for x in inputs]
        ids, mask, positions = _left_pad(seqs, _pad_id(encoder.tokenizer), _device(model))
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep)
        probs = torch.softmax(logits.logits[:, -keep:].float(), dim=-1).cpu()
        return [logprob_judgment(r, self._reading(member, tokens, probs[b])) for b, r in enumerate(requests)]

    def _reading(self, member: str, tokens: ScoreTokens, probs: torch.Tensor) -> ScoreReading:
        """``probs[0]``: the distribution after the pre-fill; ``probs[1]``: after the "1" when "10" is split."""
        first = {s: float(probs[0, t]) for s, t in tokens.first.items()}
        if not tokens.split_ten:
            return ScoreReading(first)
        zero, digit = self._digit_masks(member, probs.shape[-1])
        after_one = probs[1]
        return ScoreReading(
            first, ten_after_one=float(after_one[zero].sum()), end_after_one=float(after_one[~digit].sum())
        )


# --------------------------------------------------------------------------------------------- likelihood


class LikelihoodJudge(_BatchedJudge):
    """The judge's length-normalised likelihood of the response (plus the end of its turn) after the instruction.

    An empty (or blank) response scores 1 without a forward pass: a valid, very bad answer.
    """

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        encoder = self.encoder(member)
        results: dict[int, Judgment] = {}
        work: list[tuple[int, LikelihoodInputs]] = []
        for k, request in enumerate(requests):
            inputs = likelihood_inputs(encoder, request)
            if inputs is None:
                results[k] = blank_judgment(request)
            else:
                work.append((k, inputs))
        if work:
            logprobs = self._target_logprobs(model, _pad_id(encoder.tokenizer), [x for _, x in work])
            for (k, inputs), lps in zip(work, logprobs, strict=True):
                results[k] = likelihood_judgment(requests[k], inputs, lps, self.config)
        return [results[k] for k in range(len(requests))]

    @staticmethod
    def _target_logprobs(model, pad_id: int, items: list[LikelihoodInputs]) -> list[list[float]]:
        """Log P(target_t | context, target_<t) for every item, one batched forward pass."""
        keep = max(len(x.target_ids) for x in items) + 1
        ids, mask, positions = _left_pad([x.context_ids + x.target_ids for x in items], pad_id, _device(model))
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep)
        out = []
        for row, item in enumerate(items):
            n = len(item.target_ids)
            step = torch.log_softmax(logits.logits[row, keep - n - 1 : keep - 1].float(), dim=-1)
            target = torch.tensor(item.target_ids, device=step.device).unsqueeze(-1)
            out.append(step.gather(-1, target).squeeze(-1).tolist())
        return out
