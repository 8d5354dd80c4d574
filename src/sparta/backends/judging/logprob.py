"""The expected-score judge: the judge prompt pre-filled up to the score, read off the next-token probabilities.

Which tokens are the scores depends on the tokenizer, so :func:`score_tokens` finds them once per judge member.
When "10" is written "1" then "0", a "1" is ambiguous between the score 1 and the start of 10: the engine also
reads the distribution after the "1" (docs/judges.md, ``judge_prompt.score_distribution``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparta.backends.chat import encode
from sparta.backends.judging.encoder import JudgeEncoder
from sparta.judge_prompt import SCORE_PREFIX, SCORES, expected_score, judge_instruction, score_distribution
from sparta.records import JudgeRequest, Judgment

PREFIX_VARIANTS: tuple[tuple[str, str], ...] = ((SCORE_PREFIX + " ", ""), (SCORE_PREFIX, " "))
"""(pre-filled reply, text before the digits): ``{"score": `` then "7" when the tokenizer splits the space off
(SmolLM2), else ``{"score":`` then " 7" when the space belongs to the digit's token."""


@dataclass(frozen=True)
class ScoreTokens:
    """How a tokenizer writes the scores right after ``prefix``.

    ``first[s]`` is the token that starts score s (1..9, and 10 when "10" is one token). When "10" is "1" + "0",
    ``zero_ids`` are the tokens read as "0" after "1" (text starting with 0 and no further digit) and
    ``digit_ids`` every token starting with a digit.
    """

    prefix: str
    first: dict[int, int]
    zero_ids: tuple[int, ...] = ()
    digit_ids: tuple[int, ...] = ()

    @property
    def split_ten(self) -> bool:
        return 10 not in self.first


def _continuation(tokenizer: Any, context: str, text: str) -> list[int] | None:
    """Tokens that ``text`` adds after ``context``, or None if the boundary merges into the context's tokens."""
    base, full = encode(tokenizer, context), encode(tokenizer, context + text)
    return full[len(base) :] if full[: len(base)] == base else None


def digit_tokens(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(tokens read as "0" after a "1", tokens that start with a digit), over the tokenizer's whole vocabulary."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    digits = [i for i, t in enumerate(texts) if t[:1].isdigit()]
    zeros = [i for i in digits if texts[i][0] == "0" and not texts[i][1:2].isdigit()]
    return tuple(zeros), tuple(digits)


def score_tokens(tokenizer: Any, context: str, variants: Sequence[tuple[str, str]] = PREFIX_VARIANTS) -> ScoreTokens:
    """Find the first variant where 1..9 are single tokens and 10 is one token or "1" + "0"."""
    for prefix, before in variants:
        conts = {s: _continuation(tokenizer, context + prefix, before + str(s)) for s in SCORES}
        if any(c is None or len(c) != 1 for s, c in conts.items() if s != 10) or conts[10] is None:
            continue
        first = {s: c[0] for s, c in conts.items() if len(c) == 1}
        if 10 in first:
            return ScoreTokens(prefix, first)
        if len(conts[10]) == 2 and conts[10][0] == first[1]:
            zeros, digits = digit_tokens(tokenizer)
            if conts[10][1] in zeros:
                return ScoreTokens(prefix, first, zeros, digits)
    raise ValueError(
        f"tokenizer {tokenizer.name_or_path!r}: cannot write the scores 1..10 as single tokens (or 10 as '1' '0') "
        f"after {SCORE_PREFIX!r}; the logprob judge cannot be used with it"
    )


def member_score_tokens(encoder: JudgeEncoder, variants: Sequence[tuple[str, str]] = PREFIX_VARIANTS) -> ScoreTokens:
    """The judge member's score tokens, found after a rating prompt in its own template."""
    return score_tokens(encoder.tokenizer, encoder.chat_prompt(judge_instruction("Say hi.", "Hi!")), variants)


@dataclass(frozen=True)
class LogprobInputs:
    """What to read: the next-token probabilities of the score tokens after ``prompt_ids``, and when "10" is
    split also those of ``zero_ids`` and ``digit_ids`` after ``after_one_ids`` (= ``prompt_ids`` + the "1")."""

    prompt_ids: list[int]
    after_one_ids: list[int] | None


def logprob_inputs(encoder: JudgeEncoder, tokens: ScoreTokens, request: JudgeRequest) -> LogprobInputs:
    ids = encoder.encode(encoder.judge_prompt(request) + tokens.prefix)
    return LogprobInputs(prompt_ids=ids, after_one_ids=ids + [tokens.first[1]] if tokens.split_ten else None)


@dataclass(frozen=True)
class ScoreReading:
    """The raw numbers: P(first token of score s) after the pre-fill; when "10" is split, P("0" | "1") and
    P(a token that does not start with a digit | "1")."""

    first: dict[int, float]
    ten_after_one: float | None = None
    end_after_one: float | None = None


def reading_from_probabilities(
    tokens: ScoreTokens, first: Mapping[int, float], after_one: Mapping[int, float] | None = None
) -> ScoreReading:
    """A reading from per-token probabilities (token id -> probability), as a server that reports the
    probabilities of chosen token ids gives them: ``first`` must hold the ids of ``tokens.first``; ``after_one``
    those of ``tokens.digit_ids`` (absent ids count as 0), and P(no digit) is 1 - P(a digit)."""
    reading = {s: float(first[t]) for s, t in tokens.first.items()}
    if not tokens.split_ten:
        return ScoreReading(reading)
    if after_one is None:
        raise ValueError("'10' is not a single token: the probabilities after the '1' are needed")
    digits = sum(float(after_one.get(t, 0.0)) for t in tokens.digit_ids)
    ten = sum(float(after_one.get(t, 0.0)) for t in tokens.zero_ids)
    return ScoreReading(reading, ten_after_one=ten, end_after_one=max(0.0, 1.0 - digits))


def logprob_judgment(request: JudgeRequest, reading: ScoreReading) -> Judgment:
    """The expected score under the renormalised distribution over 1..10; never a failure."""
    dist = score_distribution(reading.first, reading.ten_after_one, reading.end_after_one)
    expectation = expected_score(dist)
    raw = json.dumps({"expected": round(expectation, 4), "p": [round(dist[s], 4) for s in SCORES]})
    return Judgment.of(request, expectation, None, raw)
