"""The judge's text protocol: the score parser on nasty replies and the score-token arithmetic, exactly."""

from __future__ import annotations

import math

import pytest

from sparta.judge_prompt import (
    SCORE_PREFIX,
    expected_score,
    judge_instruction,
    parse_score,
    score_distribution,
)

READABLE = [
    ('{"score": 7}', 7.0),
    ('```json\n{"score": 8}\n```', 8.0),
    ('```\n{ "score" : 3 }\n```', 3.0),
    ("Score: 8/10", 8.0),
    ("score = 6", 6.0),
    ("8.5", 8.5),
    ('{"score": "9"}', 9.0),
    ("10", 10.0),
    ("1", 1.0),
    ('Here is my rating.\n{"score": 4}\nThe answer is mostly wrong.', 4.0),
    ("The answer adds 23 and 58 correctly. Score: 9. It could explain 2 steps more.", 9.0),
    ("I would rate this answer 6 out of 10.", 6.0),
    ("7/10 - concise and correct.", 7.0),
    ("Rating: seven", 7.0),
    ("seven", 7.0),
    ('{"score": 5} {"score": 9}', 5.0),
    ("I'd give it a 3.", 3.0),
    ('The user asked for {"score": N}. {"score": 2}', 2.0),
]


@pytest.mark.parametrize(("text", "score"), READABLE)
def test_parse_reads_the_score(text, score):
    parsed = parse_score(text)
    assert (parsed.score, parsed.failure) == (score, None)


UNREADABLE = [
    ("", "empty"),
    ("   \n ", "empty"),
    (None, "empty"),
    ("I'm sorry, but I cannot rate this answer.", "no_score"),
    ("The answer is great!", "no_score"),
    ('{"score": N}', "no_score"),
    ("The sum of 23 and 58 is 81, which the answer gets right.", "ambiguous"),
    ("0", "out_of_range"),
    ("11", "out_of_range"),
    ('{"score": 0}', "out_of_range"),
    ("Score: 12/10", "out_of_range"),
    ('{"score": -3}', "out_of_range"),
    ("Score: eleven", "out_of_range"),
]


@pytest.mark.parametrize(("text", "failure"), UNREADABLE)
def test_parse_fails_with_a_reason(text, failure):
    parsed = parse_score(text)
    assert parsed.score is None
    assert parsed.failure is not None and parsed.failure.split(":")[0] == failure


def test_out_of_range_names_the_value():
    assert parse_score("Score: 11").failure == "out_of_range: 11"


def test_judge_instruction_asks_for_the_json_the_parser_and_prefix_expect():
    text = judge_instruction("  What is 2 + 2?  ", "4 ")
    assert "[Instruction]\nWhat is 2 + 2?\n" in text and "[Answer]\n4\n" in text
    assert '{"score": N}' in text and SCORE_PREFIX in text
    assert parse_score(SCORE_PREFIX + " 6}").score == 6.0


def test_distribution_with_a_single_ten_token_is_plain_renormalisation():
    first = {s: 0.01 * s for s in range(1, 11)}  # sums to 0.55; the rest of the vocabulary is ignored
    dist = score_distribution(first)
    assert dist == pytest.approx({s: s / 55 for s in range(1, 11)}, abs=1e-15)
    assert expected_score(dist) == pytest.approx(sum(s * s for s in range(1, 11)) / 55)  # 385/55 = 7


def test_distribution_with_ten_written_as_one_then_zero():
    # P("1") = 0.4, P("2") = 0.1, P("5") = 0.2, P("9") = 0.1; the rest goes to tokens that are no score.
    first = {1: 0.4, 2: 0.1, 3: 0.0, 4: 0.0, 5: 0.2, 6: 0.0, 7: 0.0, 8: 0.0, 9: 0.1}
    # After "1": "0" with 0.5, another digit (11..19) with 0.25, anything else (score 1 ends) with 0.25.
    dist = score_distribution(first, ten_after_one=0.5, end_after_one=0.25)
    # Unnormalised: P(1) = 0.4 * 0.25 = 0.1, P(10) = 0.4 * 0.5 = 0.2, P(2) = 0.1, P(5) = 0.2, P(9) = 0.1; total 0.7.
    expected = {1: 0.1 / 0.7, 2: 0.1 / 0.7, 5: 0.2 / 0.7, 9: 0.1 / 0.7, 10: 0.2 / 0.7}
    assert dist == pytest.approx({s: expected.get(s, 0.0) for s in range(1, 11)}, abs=1e-15)
    assert math.fsum(dist.values()) == pytest.approx(1.0)
    assert expected_score(dist) == pytest.approx((1 * 0.1 + 2 * 0.1 + 5 * 0.2 + 9 * 0.1 + 10 * 0.2) / 0.7)


def test_split_ten_needs_the_second_step():
    with pytest.raises(ValueError, match="ten_after_one"):
        score_distribution({s: 0.1 for s in range(1, 10)})


def test_all_zero_is_uniform_so_a_score_always_exists():
    dist = score_distribution({s: 0.0 for s in range(1, 11)})
    assert expected_score(dist) == pytest.approx(5.5)
