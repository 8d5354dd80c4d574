"""Scorers for verifiable answers, one per answer type: extract the final answer, compare it with the gold one.

``number``  GSM8K style: the last number of the response, thousands separators removed, numeric equality.
``math``    MATH style: the last \\boxed{...} (else "the answer is X"), normalised LaTeX or numeric equality.
``choice``  a letter A-D: "answer is B", "Answer: b", "(B)", "B)" at a line start, a lone letter; first unambiguous one.
``label``   yes / no / neutral: the first of these words in the response.
``text``    free text (a fallback): normalised exact match or whole-word containment of the gold answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from sparta.registry import Registry
from sparta.tasks.math_answer import extract_math, math_equal, normalize_math


@dataclass(frozen=True)
class Scorer:
    """``extract`` finds the answer in a response (None: no answer); ``equal`` compares it with a checked gold;
    ``check_gold`` canonicalises a gold answer and raises ValueError when it is not of this type."""

    extract: Callable[[str], str | None]
    equal: Callable[[str, str], bool]
    check_gold: Callable[[str], str]


SCORERS: Registry[Scorer] = Registry("scorer")


# --- number -------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_NUMBER_TOLERANCE = Fraction(1, 10**6)


def _parse_number(text: str) -> Fraction | None:
    cleaned = text.strip().replace(",", "").lstrip("$").rstrip(".")
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def extract_number(response: str) -> str | None:
    numbers = _NUMBER.findall(response)
    return numbers[-1].replace(",", "") if numbers else None


def number_equal(predicted: str, gold: str) -> bool:
    a, b = _parse_number(predicted), _parse_number(gold)
    return a is not None and b is not None and abs(a - b) <= _NUMBER_TOLERANCE * max(1, abs(b))


GSM8K_MARK = "####"
"""GSM8K's gold answers (openai/gsm8k) are a worked solution ending in ``#### 72``: the number after it is the gold."""


def check_number_gold(gold: str) -> str:
    if GSM8K_MARK in gold:
        gold = gold.rsplit(GSM8K_MARK, 1)[1]
    if _parse_number(gold) is None:
        raise ValueError(f"expected a number, got {gold!r}")
    return gold.strip().replace(",", "")


SCORERS.register("number")(Scorer(extract_number, number_equal, check_number_gold))


# --- math ---------------------------------------------------------------------------------------------------


def check_math_gold(gold: str) -> str:
    if not normalize_math(gold):
        raise ValueError(f"expected a MATH answer, got {gold!r}")
    return gold.strip()


SCORERS.register("math")(Scorer(extract_math, math_equal, check_math_gold))


# --- choice -------------------------------------------------------------------------------------------------

_CHOICE_STATED = re.compile(r"answer\s*(?:is|:)\s*:?\s*(?:option\s*)?(\(?)([A-D])\b", re.IGNORECASE)
_CHOICE_PAREN = re.compile(r"\(([A-Da-d])\)")
_CHOICE_LINE_START = re.compile(r"^\s*([A-D])[).:](?:\s|$)", re.MULTILINE)
_CHOICE_WORD = re.compile(r"\b([A-D])\b")
_ARTICLE_FOLLOWS = re.compile(r"\s+[A-Za-z]")


def _is_article(response: str, letter: str, end: int, parenthesised: bool) -> bool:
    """ "A"/"a" followed by a word ("the answer is a dog") is the English article, not option A."""
    return letter in "Aa" and not parenthesised and bool(_ARTICLE_FOLLOWS.match(response, end))


def _single_letter(letters: list[str]) -> str | None:
    distinct = {letter.upper() for letter in letters}
    return distinct.pop() if len(distinct) == 1 else None


def extract_choice(response: str) -> str | None:
    for match in _CHOICE_STATED.finditer(response):
        if not _is_article(response, match.group(2), match.end(), bool(match.group(1))):
            return match.group(2).upper()
    for pattern in (_CHOICE_PAREN, _CHOICE_LINE_START):
        letter = _single_letter(pattern.findall(response))
        if letter:
            return letter
    bare = response.strip().strip(".:()[]*").strip()
    if len(bare) == 1 and bare.upper() in "ABCD":
        return bare.upper()
    words = _CHOICE_WORD.finditer(response)
    return _single_letter([m.group(1) for m in words if not _is_article(response, m.group(1), m.end(), False)])


def check_choice_gold(gold: str) -> str:
    letter = gold.strip().strip("().").strip().upper()
    if len(letter) != 1 or letter not in "ABCD":
        raise ValueError(f"expected a letter A-D, got {gold!r}")
    return letter


SCORERS.register("choice")(Scorer(extract_choice, lambda a, b: a.upper() == b.upper(), check_choice_gold))


# --- label --------------------------------------------------------------------------------------------------

LABELS = ("yes", "no", "neutral")
_LABEL = re.compile(r"\b(yes|no|neutral)\b", re.IGNORECASE)


def extract_label(response: str) -> str | None:
    match = _LABEL.search(response)
    return match.group(1).lower() if match else None


def check_label_gold(gold: str) -> str:
    label = gold.strip().strip(".").lower()
    if label not in LABELS:
        raise ValueError(f"expected one of {', '.join(LABELS)}, got {gold!r}")
    return label


SCORERS.register("label")(Scorer(extract_label, lambda a, b: a.lower() == b.lower(), check_label_gold))


# --- text ---------------------------------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    return " ".join(text.split())


def text_equal(predicted: str, gold: str) -> bool:
    a, b = normalize_text(predicted), normalize_text(gold)
    return bool(b) and (a == b or f" {b} " in f" {a} ")


def check_text_gold(gold: str) -> str:
    if not normalize_text(gold):
        raise ValueError(f"expected a non-empty answer, got {gold!r}")
    return gold.strip()


SCORERS.register("text")(Scorer(lambda r: r.strip() or None, text_equal, check_text_gold))


# --- public -------------------------------------------------------------------------------------------------


def extract_answer(answer_type: str, response: str) -> str | None:
    """The final answer a response gives, in the form ``answer_type`` expects; None when it gives none."""
    return SCORERS.get(answer_type).extract(response)


def score_answer(answer_type: str, response: str, gold: str) -> float:
    """1.0 when the response's final answer equals the gold answer, else 0.0 (also when it has no answer)."""
    scorer = SCORERS.get(answer_type)
    if gold is None:
        raise ValueError(f"cannot score a {answer_type!r} answer without a gold answer")
    expected = scorer.check_gold(gold)
    predicted = scorer.extract(response)
    return 1.0 if predicted is not None and scorer.equal(predicted, expected) else 0.0
