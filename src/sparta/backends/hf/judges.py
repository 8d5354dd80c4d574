"""Judges: every pool member scores responses 1..10 as itself (its adapter, tokenizer, chat template, system prompt).

Three ways to read a score out of a language model, chosen by ``judge.type``:

- ``generate``   the paper's pointwise judge: the judge writes ``{"score": N}`` (greedy) and the reply is parsed;
                 an unreadable reply is a failed judgment (excluded and counted, never defaulted);
- ``logprob``    the same prompt, pre-filled up to the score: the expected score under the judge's renormalised
                 next-token distribution over 1..10; one forward pass, never fails;
- ``likelihood`` no prompt at all: the judge's own geometric-mean probability of the response tokens as an
                 answer to the instruction, mapped onto 1..10. Small models judge far better this way.

Requests are grouped by judge member, sorted by length and batched (``judge.batch_size``); output order follows
input order. See docs/judges.md for the exact definitions and their known biases.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from sparta.backends.base import Progress
from sparta.config import JudgeConfig
from sparta.judge_prompt import SCORE_PREFIX, SCORES, expected_score, judge_instruction, parse_score, score_distribution
from sparta.records import JudgeRequest, Judgment

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool


def _quiet(_: int) -> None:
    return None


class Judge(Protocol):
    """Scores each request 1..10 as ``request.judge`` sees it; one judgment per request, in order."""

    def score(self, requests: Sequence[JudgeRequest], progress: Progress = _quiet) -> list[Judgment]: ...


JudgeFactory = Callable[["ModelPool", JudgeConfig], Judge]


# --------------------------------------------------------------------------------------------- shared machinery


def _encode(tokenizer, text: str) -> list[int]:
    """Token ids of text that already carries its special tokens (chat templates write them out)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


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


def _truncated(tokenizer, text: str, max_tokens: int) -> tuple[list[int], bool]:
    """The response's token ids, cut to ``max_tokens`` (the response only, never the instruction)."""
    ids = _encode(tokenizer, text)
    return ids[:max_tokens], len(ids) > max_tokens


def turn_end_id(pool: ModelPool, member: str) -> int:
    """The token that closes an assistant turn in ``member``'s chat template (``<|im_end|>``, ``<|eot_id|>``...).

    Found by rendering a turn around a sentinel; templates that hide it fall back to the eos token.
    """
    tokenizer = pool.tokenizer(member)
    sentinel = "SPARTASENTINEL"
    messages = pool.messages(member, "hi") + [{"role": "assistant", "content": sentinel}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    _, found, suffix = rendered.rpartition(sentinel)
    suffix_ids = _encode(tokenizer, suffix) if found else []
    if suffix_ids and suffix.strip():
        return suffix_ids[0]
    if tokenizer.eos_token_id is None:
        raise ValueError(f"cannot tell where an assistant turn ends for member {member!r}: no template suffix, no eos")
    return int(tokenizer.eos_token_id)


def _batches(requests: Sequence[JudgeRequest], batch_size: int) -> Iterator[tuple[str, list[int]]]:
    """(judge member, request indices) batches: one member per batch, similar lengths together."""
    by_judge: dict[str, list[int]] = defaultdict(list)
    for i, request in enumerate(requests):
        by_judge[request.judge].append(i)
    for member, indices in by_judge.items():
        indices.sort(key=lambda i: len(requests[i].instruction.text) + len(requests[i].response.text))
        for start in range(0, len(indices), batch_size):
            yield member, indices[start : start + batch_size]


def _judgment(request: JudgeRequest, score: float | None, failure: str | None, raw: str) -> Judgment:
    return Judgment(
        judge=request.judge,
        model=request.response.model,
        instruction_id=request.instruction.id,
        score=score,
        failure=failure,
        raw=raw,
    )


class _BatchedJudge:
    """Runs ``_score_batch`` over one-member batches and puts the judgments back in request order."""

    def __init__(self, pool: ModelPool, judge: JudgeConfig) -> None:
        self.pool = pool
        self.config = judge
        self._turn_end: dict[str, int] = {}

    def turn_end(self, member: str) -> int:
        if member not in self._turn_end:
            self._turn_end[member] = turn_end_id(self.pool, member)
        return self._turn_end[member]

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

    def _judge_prompt(self, member: str, request: JudgeRequest) -> str:
        """The judge's chat-formatted prompt: its system prompt, then the rating question with the response."""
        tokenizer = self.pool.tokenizer(member)
        ids, cut = _truncated(tokenizer, request.response.text, self.config.max_response_tokens)
        response = tokenizer.decode(ids) if cut else request.response.text
        return self.pool.prompt_text(member, judge_instruction(request.instruction.text, response))


# --------------------------------------------------------------------------------------------- generate


class GenerateJudge(_BatchedJudge):
    """The judge writes its verdict (greedy, ``judge.max_new_tokens``); ``parse_score`` reads it."""

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        from transformers import GenerationConfig

        tokenizer = self.pool.tokenizer(member)
        seqs = [_encode(tokenizer, self._judge_prompt(member, r)) for r in requests]
        ids, mask, _ = _left_pad(seqs, _pad_id(tokenizer), _device(model))
        stops = {self.turn_end(member)} | ({tokenizer.eos_token_id} - {None})
        greedy = GenerationConfig(
            do_sample=False,
            max_new_tokens=self.config.max_new_tokens,
            eos_token_id=sorted(stops),
            pad_token_id=_pad_id(tokenizer),
        )
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=greedy)
        texts = tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        judged = []
        for request, text in zip(requests, texts, strict=True):
            parsed = parse_score(text)
            judged.append(_judgment(request, parsed.score, parsed.failure, text))
        return judged


# --------------------------------------------------------------------------------------------- logprob

PREFIX_VARIANTS: tuple[tuple[str, str], ...] = ((SCORE_PREFIX + " ", ""), (SCORE_PREFIX, " "))
"""(pre-filled reply, text before the digits): ``{"score": `` then "7" when the tokenizer splits the space off
(SmolLM2), else ``{"score":`` then " 7" when the space belongs to the digit's token."""


@dataclass(frozen=True)
class ScoreTokens:
    """How a tokenizer writes the scores right after ``prefix``.

    ``first[s]`` is the token that starts score s (1..9, and 10 when "10" is one token). When "10" is "1" + "0",
    ``zero_mask`` marks the tokens read as "0" after "1" (text starting with 0 and no further digit) and
    ``digit_mask`` every token starting with a digit.
    """

    prefix: str
    first: dict[int, int]
    zero_mask: torch.Tensor | None = None
    digit_mask: torch.Tensor | None = None

    @property
    def split_ten(self) -> bool:
        return 10 not in self.first


def _continuation(tokenizer, context: str, text: str) -> list[int] | None:
    """Tokens that ``text`` adds after ``context``, or None if the boundary merges into the context's tokens."""
    base, full = _encode(tokenizer, context), _encode(tokenizer, context + text)
    return full[len(base) :] if full[: len(base)] == base else None


def _digit_masks(tokenizer, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    texts = tokenizer.batch_decode([[i] for i in range(min(len(tokenizer), vocab_size))])
    zero = torch.zeros(vocab_size, dtype=torch.bool)
    digit = torch.zeros(vocab_size, dtype=torch.bool)
    for i, t in enumerate(texts):
        if t[:1].isdigit():
            digit[i] = True
            zero[i] = t[0] == "0" and not t[1:2].isdigit()
    return zero, digit


def score_tokens(
    tokenizer, context: str, vocab_size: int, variants: Sequence[tuple[str, str]] = PREFIX_VARIANTS
) -> ScoreTokens:
    """Find the first variant where 1..9 are single tokens and 10 is one token or "1" + "0"."""
    for prefix, before in variants:
        conts = {s: _continuation(tokenizer, context + prefix, before + str(s)) for s in SCORES}
        if any(c is None or len(c) != 1 for s, c in conts.items() if s != 10) or conts[10] is None:
            continue
        first = {s: c[0] for s, c in conts.items() if len(c) == 1}
        if 10 in first:
            return ScoreTokens(prefix, first)
        if len(conts[10]) == 2 and conts[10][0] == first[1]:
            zero, digit = _digit_masks(tokenizer, vocab_size)
            if zero[conts[10][1]]:
                return ScoreTokens(prefix, first, zero, digit)
    raise ValueError(
        f"tokenizer {tokenizer.name_or_path!r}: cannot write the scores 1..10 as single tokens (or 10 as '1' '0') "
        f"after {SCORE_PREFIX!r}; the logprob judge cannot be used with it"
    )


class LogprobJudge(_BatchedJudge):
    """Expected score from one forward pass over the judge prompt pre-filled with ``{"score": ``.

    When "10" is "1" + "0" the pass also carries the "1" token: causal attention leaves the logits before it
    unchanged, so one pass gives both P(first token) and P(next token | "1") (docs/judges.md).
    """

    def __init__(self, pool: ModelPool, judge: JudgeConfig, variants: Sequence[tuple[str, str]] = PREFIX_VARIANTS):
        super().__init__(pool, judge)
        self.variants = tuple(variants)
        self._tokens: dict[str, ScoreTokens] = {}

    def tokens(self, member: str) -> ScoreTokens:
        """The member's score tokens, found once (masks sized to the model's output vocabulary)."""
        if member not in self._tokens:
            vocab_size = self.pool.model(member).get_output_embeddings().weight.shape[0]
            context = self.pool.prompt_text(member, judge_instruction("Say hi.", "Hi!"))
            self._tokens[member] = score_tokens(self.pool.tokenizer(member), context, vocab_size, self.variants)
        return self._tokens[member]

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        tokenizer = self.pool.tokenizer(member)
        tokens = self.tokens(member)
        seqs = [_encode(tokenizer, self._judge_prompt(member, r) + tokens.prefix) for r in requests]
        if tokens.split_ten:
            seqs = [s + [tokens.first[1]] for s in seqs]
        keep = 2 if tokens.split_ten else 1
        ids, mask, positions = _left_pad(seqs, _pad_id(tokenizer), _device(model))
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep)
        probs = torch.softmax(logits.logits[:, -keep:].float(), dim=-1).cpu()
        return [_judgment(r, *self._expected(tokens, probs[b])) for b, r in enumerate(requests)]

    @staticmethod
    def _expected(tokens: ScoreTokens, probs: torch.Tensor) -> tuple[float, None, str]:
        first = {s: float(probs[0, t]) for s, t in tokens.first.items()}
        if tokens.split_ten:
            after_one = probs[1]
            dist = score_distribution(
                first,
                ten_after_one=float(after_one[tokens.zero_mask].sum()),
                end_after_one=float(after_one[~tokens.digit_mask].sum()),
            )
        else:
            dist = score_distribution(first)
        expectation = expected_score(dist)
        raw = json.dumps({"expected": round(expectation, 4), "p": [round(dist[s], 4) for s in SCORES]})
        return expectation, None, raw


# --------------------------------------------------------------------------------------------- likelihood


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


class LikelihoodJudge(_BatchedJudge):
    """The judge's length-normalised likelihood of the response (plus the end of its turn) after the instruction.

    The context is the judge's own chat prompt for the instruction (system prompt included); the scored tokens
    are the response's, cut to ``judge.max_response_tokens``, followed by the turn-end token unless the response
    was cut. An empty (or blank) response scores 1 without a forward pass: a valid, very bad answer.
    """

    def _targets(self, member: str, text: str) -> tuple[list[int], bool]:
        ids, cut = _truncated(self.pool.tokenizer(member), text, self.config.max_response_tokens)
        return (ids if cut else ids + [self.turn_end(member)]), cut

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        tokenizer = self.pool.tokenizer(member)
        results: dict[int, Judgment] = {}
        work: list[tuple[int, list[int], list[int], bool]] = []
        for k, r in enumerate(requests):
            if not r.response.text.strip():
                results[k] = _judgment(r, 1.0, None, json.dumps({"empty": True}))
                continue
            targets, cut = self._targets(member, r.response.text)
            work.append((k, _encode(tokenizer, self.pool.prompt_text(member, r.instruction.text)), targets, cut))
        if work:
            logprobs = self._target_logprobs(model, tokenizer, [(p, t) for _, p, t, _ in work])
            for (k, _, targets, cut), lps in zip(work, logprobs, strict=True):
                results[k] = self._judged(requests[k], targets, lps, cut)
        return [results[k] for k in range(len(requests))]

    @staticmethod
    def _target_logprobs(model, tokenizer, items: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """Log P(target_t | context, target_<t) for every (context, targets) item, one batched forward pass."""
        keep = max(len(t) for _, t in items) + 1
        ids, mask, positions = _left_pad([c + t for c, t in items], _pad_id(tokenizer), _device(model))
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep)
        out = []
        for row, (_, targets) in enumerate(items):
            n = len(targets)
            step = torch.log_softmax(logits.logits[row, keep - n - 1 : keep - 1].float(), dim=-1)
            target = torch.tensor(targets, device=step.device).unsqueeze(-1)
            out.append(step.gather(-1, target).squeeze(-1).tolist())
        return out

    def _judged(self, request: JudgeRequest, targets: list[int], logprobs: list[float], cut: bool) -> Judgment:
        score = likelihood_score(
            logprobs, targets, self.config.likelihood_repeat_ngram, self.config.likelihood_min_tokens
        )
        n = self.config.likelihood_repeat_ngram
        kept = len(targets) - (sum(repeated_ngram_mask(targets, n)) if n > 0 else 0)
        mean = math.fsum(logprobs) / len(logprobs)
        raw = {"mean_logprob": round(mean, 4), "tokens": len(targets), "kept": kept, "truncated": cut}
        return _judgment(request, score, None, json.dumps(raw))
