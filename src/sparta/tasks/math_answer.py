"""MATH-style answers: pull the final answer out of a LaTeX solution and decide whether two answers are equal.

Two answers are equal when their normalised strings match (spacing, \\left/\\right, \\dfrac, units in
``\\text{ ...}``, dollar signs and the like removed) or when both read as the same number
(``\\frac{1}{2}`` equals ``0.5``, ``10,\\!000`` equals ``10000``).
"""

from __future__ import annotations

import re
from fractions import Fraction

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*", re.IGNORECASE)
_INLINE_MATH = re.compile(r"^\$+(.+?)\$+")

_REMOVED = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "^{\\circ}", "^\\circ", "\\%", "%", "\\$", "$")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}")
_UNIT_SUFFIX = re.compile(r"\\(?:text|mbox|mathrm)\s*\{\s[^{}]*\}\s*$")
_SHORT_FRAC = re.compile(r"\\frac\s*(\d)\s*(\d)")
_HALF_SHORT_FRAC = re.compile(r"\\frac\s*(\d)\s*(\{)")
_SHORT_SQRT = re.compile(r"\\sqrt\s*(\w)")
_SLASH_FRAC = re.compile(r"^(-?\d+)/(\d+)$")
_LEFT_VARIABLE = re.compile(r"^[a-zA-Z](?:_\w)?=(?!=)")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)$")
_FRAC_NUMBER = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$")


def _balanced(text: str, open_at: int) -> str | None:
    """The content of the brace group that opens at ``open_at``, or None if it never closes."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (braces balanced), or of a bare ``\\boxed 5``."""
    matches = list(_BOXED.finditer(text))
    for match in reversed(matches):
        start = match.end()
        if text[start : start + 1] == "{":
            content = _balanced(text, start)
            if content is not None:
                return content
        else:
            bare = re.match(r"[^\s$]+", text[start:])
            if bare:
                return bare.group(0)
    return None


def answer_after_phrase(text: str) -> str | None:
    """What follows the last "answer is": inline math if it starts with some, else the rest of the sentence."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :].strip()
    inline = _INLINE_MATH.match(rest)
    if inline:
        return inline.group(1).strip()
    sentence = re.split(r"\n|\.\s|\.$", rest, maxsplit=1)[0]
    return sentence.strip() or None


def extract_math(response: str) -> str | None:
    """The final answer of a solution: the last \\boxed{...}, else whatever follows "the answer is"."""
    boxed = last_boxed(response)
    return boxed if boxed is not None else answer_after_phrase(response)


def normalize_math(answer: str) -> str:
    """A canonical string for a MATH answer (Hendrycks-style normalisation)."""
    s = answer.strip().replace("\n", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    for token in _REMOVED:
        s = s.replace(token, "")
    s = _UNIT_SUFFIX.sub("", s)
    s = _TEXT_WRAPPER.sub(r"\1", s)
    s = s.replace(" ", "").rstrip(".")
    s = _LEFT_VARIABLE.sub("", s)
    s = _SHORT_FRAC.sub(r"\\frac{\1}{\2}", s)
    s = _HALF_SHORT_FRAC.sub(r"\\frac{\1}\2", s)
    s = _SHORT_SQRT.sub(r"\\sqrt{\1}", s)
    s = _SLASH_FRAC.sub(r"\\frac{\1}{\2}", s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    if s.startswith("."):
        s = "0" + s
    return s


def math_number(normalized: str) -> Fraction | None:
    """The exact value of a normalised answer that is a plain number or a \\frac of integers, else None."""
    if _PLAIN_NUMBER.match(normalized):
        return Fraction(normalized)
    frac = _FRAC_NUMBER.match(normalized)
    if frac and int(frac.group(3)) != 0:
        value = Fraction(int(frac.group(2)), int(frac.group(3)))
        return -value if frac.group(1) else value
    return None


def math_equal(predicted: str, gold: str) -> bool:
    """Equal as normalised strings, or as numbers up to a relative tolerance of 1e-6."""
    a, b = normalize_math(predicted), normalize_math(gold)
    if a == b:
        return True
    x, y = math_number(a), math_number(b)
    return x is not None and y is not None and abs(x - y) <= Fraction(1, 10**6) * max(1, abs(y))
