"""Scorers: answer extraction and equality for number, math, choice, label and text answers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparta.tasks import SCORERS, extract_answer, load_task, score_answer


@pytest.mark.parametrize(
    "answer_type, response, gold, expected",
    [
        # number: the last number, thousands separators removed, numeric equality
        ("number", "She sold 48 + 24 = 72 clips. The answer is 72.", "72", 1.0),
        ("number", "The total is 1,000.", "1000", 1.0),
        ("number", "It costs $1,234.50 in all", "1234.5", 1.0),
        ("number", "We get 2.50", "2.5", 1.0),
        ("number", "The answer is 18 dollars, not 19.", "18", 0.0),  # the *last* number counts
        ("number", "The temperature fell to -5 degrees.", "-5", 1.0),
        ("number", "8-3 = 5", "5", 1.0),
        ("number", "The answer is 41.9999999", "42", 1.0),  # within the relative tolerance
        ("number", "The answer is 41.99", "42", 0.0),
        ("number", "I do not know.", "42", 0.0),
        ("number", "The answer is 7", "1,000", 0.0),
        # math: last \boxed{} with balanced braces, else "answer is X", normalised or numeric equality
        ("math", "So $x = \\boxed{\\frac{1}{2}}$.", "0.5", 1.0),
        ("math", "\\boxed{0.5}", "\\frac{1}{2}", 1.0),
        ("math", "\\boxed{\\dfrac{3}{4}}", "\\frac34", 1.0),
        ("math", "first \\boxed{3}, then \\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}", 1.0),
        ("math", "\\boxed{2 \\text{ euros}}", "2", 1.0),
        ("math", "\\boxed{10,\\!000}", "10000", 1.0),
        ("math", "\\boxed{\\left( 4, 4 \\right)}", "(4,4)", 1.0),
        ("math", "\\boxed{x = 2}", "2", 1.0),
        ("math", "\\boxed{90^\\circ}", "90", 1.0),
        ("math", "\\boxed{50\\%}", "50", 1.0),
        ("math", "\\boxed 5", "5", 1.0),
        ("math", "The answer is $-\\frac{2}{3}$.", "-\\frac{2}{3}", 1.0),
        ("math", "Thus the answer is 12. Hope this helps.", "12", 1.0),
        ("math", "\\boxed{\\text{Devon}}", "\\text{Devon}", 1.0),
        ("math", "\\boxed{(t-7)(t+7)}", "(t-7)(t+7)", 1.0),
        ("math", "\\boxed{\\frac{1}{3}}", "0.33", 0.0),
        ("math", "\\boxed{\\frac{1}{2}", "0.5", 0.0),  # unbalanced box, no other answer
        ("math", "It is 11.", "11", 0.0),  # no box and no "answer is"
        # choice: the first unambiguous letter
        ("choice", "The answer is (C).", "C", 1.0),
        ("choice", "Answer: b", "B", 1.0),
        ("choice", "B) Jennifer_Aniston", "B", 1.0),
        ("choice", "(D)", "D", 1.0),
        ("choice", "d", "D", 1.0),
        ("choice", "I think the correct answer is option A.", "A", 1.0),
        ("choice", "The answer is B because the others fail.", "B", 1.0),
        ("choice", "The answer is a dog, so (C).", "C", 1.0),  # "a dog" is an article, not option A
        ("choice", "(A) is wrong and (B) is wrong", "A", 0.0),  # ambiguous: no answer
        ("choice", "A) one\nB) two\nC) three", "A", 0.0),  # echoed options: ambiguous
        ("choice", "Clearly C is the one that fits.", "C", 1.0),
        ("choice", "Answer: (b)", "(B)", 1.0),
        # label: the first yes / no / neutral word
        ("label", "No, it is not acceptable.", "no", 1.0),
        ("label", "YES. Definitely.", "yes", 1.0),
        ("label", "Neutral: it depends.", "neutral", 1.0),
        ("label", "Not really; no.", "no", 1.0),  # "Not" is not "no"
        ("label", "Yes, although some say no.", "no", 0.0),
        ("label", "Nobody knows.", "no", 0.0),
        # text: normalised exact match or whole-word containment
        ("text", "In pain.", "in pain", 1.0),
        ("text", "Alexander would be seen as in pain, probably.", "in pain", 1.0),
        ("text", "painful", "in pain", 0.0),
        ("text", "", "in pain", 0.0),
    ],
)
def test_score_answer(answer_type, response, gold, expected):
    assert score_answer(answer_type, response, gold) == expected


@pytest.mark.parametrize(
    "answer_type, response, extracted",
    [
        ("number", "1,000 and then 2,500,000", "2500000"),
        ("number", "no digits", None),
        ("math", "\\boxed{\\frac{a}{\\sqrt{b}}} end", "\\frac{a}{\\sqrt{b}}"),
        ("math", "The final answer is $\\boxed{7}$", "7"),
        ("choice", "the answer is a guess", None),
        ("label", "maybe", None),
    ],
)
def test_extract_answer(answer_type, response, extracted):
    assert extract_answer(answer_type, response) == extracted


def test_gold_checks_and_errors():
    assert SCORERS.get("choice").check_gold(" (c) ") == "C"
    assert SCORERS.get("label").check_gold("Yes") == "yes"
    assert SCORERS.get("number").check_gold("1,000") == "1000"
    for answer_type, gold in (("choice", "E"), ("label", "maybe"), ("number", "ten"), ("text", " ... ")):
        with pytest.raises(ValueError):
            SCORERS.get(answer_type).check_gold(gold)
    with pytest.raises(ValueError, match="without a gold answer"):
        score_answer("number", "42", None)
    with pytest.raises(KeyError, match="unknown scorer 'float'"):
        score_answer("float", "42", "42")
    assert SCORERS.names() == ["choice", "label", "math", "number", "text"]


@given(st.integers(min_value=-(10**12), max_value=10**12), st.text(alphabet="abc xyz.", max_size=20))
def test_number_scorer_reads_any_integer_written_with_separators(value, filler):
    assert score_answer("number", f"{filler} {value:,}", str(value)) == 1.0


@given(st.fractions(min_value=-1000, max_value=1000, max_denominator=50))
def test_math_scorer_boxed_fraction_equals_its_decimal(value):
    sign = "-" if value < 0 else ""
    boxed = f"\\boxed{{{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}}}"
    assert score_answer("math", boxed, repr(float(value))) == 1.0


def test_math_reference_solutions_score_against_their_gold(shared_tasks):
    """The authors' own solutions (raw records) agree with the loaded gold answers, bar a few known mismatches."""
    import json

    raw = [json.loads(line) for line in (shared_tasks / "math" / "easy.jsonl").read_text(encoding="utf-8").splitlines()]
    instructions = load_task("math", {"path": str(shared_tasks / "math" / "easy.jsonl")})
    scores = [score_answer("math", record["solution"], i.answer) for record, i in zip(raw, instructions, strict=True)]
    assert sum(scores) / len(scores) > 0.99


def test_gsm8k_hub_golds_are_the_number_after_the_mark(tmp_path):
    """openai/gsm8k's answers are worked solutions ending in '#### N'; read through a loader, N is the gold."""
    solution = "Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips.\n#### 1,072"
    assert SCORERS.get("number").check_gold(solution) == "1072"
    path = tmp_path / "gsm8k.jsonl"
    path.write_text(json.dumps({"question": "How many clips?", "answer": solution}) + "\n")
    (item,) = load_task("jsonl", {"path": str(path), "prompt_field": "question", "answer_field": "answer",
                                  "answer_type": "number"})  # fmt: skip
    assert item.answer == "1072" and score_answer("number", "So she sold 1072 clips.", item.answer) == 1.0
    with pytest.raises(ValueError, match="expected a number"):
        SCORERS.get("number").check_gold("#### many")
