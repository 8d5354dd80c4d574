"""The pointwise judge's text protocol: the prompt, the robust score parser and the score-token arithmetic.

Pure Python (no torch) so the parsing rules and the expected-score math are unit-tested exactly; the token ids
a judge reads are built in ``sparta.backends.judging`` and the engines (``sparta.backends.hf.judges``) only add the
forward passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

MIN_SCORE, MAX_SCORE = 1, 10
SCORES = tuple(range(MIN_SCORE, MAX_SCORE + 1))

JUDGE_TEMPLATE = """\
Please act as an impartial judge and rate the answer an AI assistant gave to the instruction below. \
Judge whether the answer is correct, relevant to the instruction, complete and clearly written. \
Rate it on a scale from 1 (useless) to 10 (excellent).
Reply with only a JSON object of the form {{"score": N}}, where N is a whole number from 1 to 10.

[Instruction]
{instruction}

[Answer]
{response}
[End of answer]"""
"""The rating question. The answer comes last, as in MT-Bench's single-answer grading prompt (FastChat's
``judge_prompts.jsonl``, ``single-v1``): everything before it is the same for every request of a judge (the rubric)
or of a match (the instruction), so an engine computes it once and only the answer and a few closing tokens are
each judgment's own."""

SCORE_PREFIX = '{"score":'
"""Where the judge's reply reaches the score; the logprob judge pre-fills the reply up to here."""


def judge_instruction(instruction: str, response: str) -> str:
    """The user message a judge receives (the judge's own chat template and system prompt wrap it)."""
    return JUDGE_TEMPLATE.format(instruction=instruction.strip(), response=response.strip())


# --------------------------------------------------------------------------------------------- parsing

_NUMBER = r"\d+(?:\.\d+)?"
_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven".split())}
_WORD = "|".join(_WORDS)
_VALUE = rf"(?:{_NUMBER}|{_WORD})"
# "score": 7 / "score": "7" / Score: 8/10 / rating = seven / Score - 9
_KEYED = re.compile(
    r"""["']?\b(?:score|rating|grade)\b["']?\s*(?:[:=\-]|is)\s*["']?"""
    rf"""(?P<value>-?{_VALUE})\b["']?(?:\s*(?:/|out\s+of)\s*10\b)?""",
    re.IGNORECASE,
)
_OVER_TEN = re.compile(rf"(?<![\w.])(?P<value>-?{_NUMBER})\s*(?:/|out\s+of)\s*10(?!\d|\.\d)", re.IGNORECASE)
_ANY_NUMBER = re.compile(rf"(?<![\w.])-?{_NUMBER}(?![\w]|\.\d)")
_FENCE = re.compile(r"```[a-zA-Z]*")
_BARE = re.compile(rf"^\W*(?P<value>-?{_VALUE})\W*$", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedScore:
    """A score on 1..10, or ``None`` with the reason (``empty``, ``no_score``, ``ambiguous``, ``out_of_range``)."""

    score: float | None
    failure: str | None = None


def _value(text: str) -> float:
    word = text.lower()
    return float(_WORDS[word]) if word in _WORDS else float(text)


def _in_range(value: float, source: str) -> ParsedScore:
    if MIN_SCORE <= value <= MAX_SCORE:
        return ParsedScore(value)
    return ParsedScore(None, f"out_of_range: {source}")


def parse_score(text: str | None) -> ParsedScore:
    """Read a 1-10 score from a judge's reply, or say why it cannot be read.

    In order of trust: a keyed value (``{"score": 7}``, ``Score: 8/10``, ``rating: seven``; the first one wins),
    then ``N/10`` or ``N out of 10``, then a reply that is nothing but one number (or number word), then a reply
    that mentions exactly one number. Several different numbers without a key are ``ambiguous``; values outside
    1..10 are ``out_of_range``; nothing is ever defaulted.
    """
    if text is None or not text.strip():
        return ParsedScore(None, "empty")
    body = _FENCE.sub(" ", text).strip()
    for pattern in (_KEYED, _OVER_TEN, _BARE):
        match = pattern.search(body)
        if match:
            return _in_range(_value(match["value"]), match["value"])
    numbers = {float(n) for n in _ANY_NUMBER.findall(body)}
    if len(numbers) == 1:
        value = numbers.pop()
        return _in_range(value, f"{value:g}")
    if numbers:
        return ParsedScore(None, f"ambiguous: {len(numbers)} different numbers")
    return ParsedScore(None, "no_score")


# --------------------------------------------------------------------------------------------- score tokens


def score_distribution(
    first: Mapping[int, float],
    ten_after_one: float | None = None,
    end_after_one: float | None = None,
) -> dict[int, float]:
    """The renormalised distribution over the scores 1..10 from next-token probabilities.

    ``first[s]`` is the probability that the score's first token is the one for ``s`` (keys 1..9, plus 10 when
    "10" is a single token). When it is not, "10" is written "1" then "0": with ``ten_after_one`` = P("0" | "1")
    and ``end_after_one`` = P(a token that does not start with a digit | "1"), P(10) = P("1") * ten_after_one
    and P(1) = P("1") * end_after_one (a "1" followed by another digit means 11..19 or more: not a valid score).
    If every probability is zero the distribution is uniform, so the expected score always exists.
    """
    raw = {s: max(float(first.get(s, 0.0)), 0.0) for s in SCORES if s != MAX_SCORE}
    if MAX_SCORE in first:
        raw[MAX_SCORE] = max(float(first[MAX_SCORE]), 0.0)
    else:
        if ten_after_one is None or end_after_one is None:
            raise ValueError(
                "score_distribution: '10' is not a single token, so ten_after_one and end_after_one are needed"
            )
        p_one = raw[MIN_SCORE]
        raw[MAX_SCORE] = p_one * ten_after_one
        raw[MIN_SCORE] = p_one * end_after_one
    total = math.fsum(raw.values())
    if not total > 0:
        return {s: 1.0 / len(SCORES) for s in SCORES}
    return {s: raw[s] / total for s in SCORES}


def expected_score(distribution: Mapping[int, float]) -> float:
    """The mean score under a distribution over 1..10 (which must sum to one)."""
    return math.fsum(s * p for s, p in distribution.items())
