"""The procedural suite: deterministic, an even domain mix, correct gold answers, worked expert examples."""

from __future__ import annotations

import random
import re
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparta.tasks import (
    TaskOptionsError,
    load_task,
    procedural_domains,
    procedural_expert_examples,
    procedural_instructions,
    score_answer,
)
from sparta.tasks.procedural_domains import DOMAINS
from sparta.tasks.procedural_vocab import CATEGORIES, UNITS

EXPECTED_TYPES = {
    "arithmetic": "number",
    "unit_conversion": "number",
    "multiple_choice": "choice",
    "yes_no": "label",
    "writing": None,
}


def test_default_suite_is_an_even_mix_of_verifiable_and_open_prompts():
    instructions = load_task("procedural", {})
    assert len(instructions) == 400
    assert set(procedural_domains()) == set(EXPECTED_TYPES)
    assert Counter(i.domain for i in instructions) == {domain: 80 for domain in EXPECTED_TYPES}
    for instruction in instructions:
        assert instruction.answer_type == EXPECTED_TYPES[instruction.domain]
        assert (instruction.answer is None) == (instruction.domain == "writing")
        assert len(instruction.text) < 200
    assert len({i.id for i in instructions}) == 400
    assert instructions[0].id == "procedural-arithmetic-00000"
    labels = Counter(i.answer for i in instructions if i.domain == "yes_no")
    assert labels["yes"] > 20 and labels["no"] > 20
    letters = Counter(i.answer for i in instructions if i.domain == "multiple_choice")
    assert set(letters) == set("ABCD")


def test_same_options_same_list_and_seeds_differ():
    options = {"size": 60, "seed": 3, "domains": ["yes_no", "arithmetic"]}
    first, again = load_task("procedural", options), load_task("procedural", dict(options))
    assert first == again
    assert {i.domain for i in first} == {"yes_no", "arithmetic"}
    other = load_task("procedural", {**options, "seed": 4})
    assert [i.id for i in other] == [i.id for i in first] and [i.text for i in other] != [i.text for i in first]


def test_a_larger_suite_extends_a_smaller_one():
    small = procedural_instructions(size=25, seed=1)
    large = {i.id: i for i in procedural_instructions(size=100, seed=1)}
    assert all(large[i.id] == i for i in small)


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(1, 60),
    seed=st.integers(0, 10**6),
    domains=st.lists(st.sampled_from(sorted(EXPECTED_TYPES)), min_size=1, max_size=5, unique=True),
)
def test_any_options_are_deterministic_with_unique_ids(size, seed, domains):
    instructions = procedural_instructions(size, seed, domains)
    assert instructions == procedural_instructions(size, seed, list(domains))
    assert len(instructions) == size and len({i.id for i in instructions}) == size
    counts = Counter(i.domain for i in instructions)
    assert max(counts.values()) - min(counts.get(d, 0) for d in domains) <= 1


def test_bad_options_are_named():
    with pytest.raises(TaskOptionsError, match="unknown domains \\['poetry'\\]"):
        load_task("procedural", {"domains": ["poetry"]})
    with pytest.raises(TaskOptionsError, match="'size'"):
        load_task("procedural", {"size": 0})
    with pytest.raises(TaskOptionsError, match="listed twice"):
        load_task("procedural", {"domains": ["writing", "writing"]})


def _independent_gold(prompt: str) -> str | None:
    """Recompute a gold answer from the prompt text alone, for the templates where that is easy."""
    if m := re.fullmatch(r"Is (\d+) greater than (\d+)\? Answer yes or no\.", prompt):
        return "yes" if int(m[1]) > int(m[2]) else "no"
    if m := re.fullmatch(r"Is (\d+) an even number\? Answer yes or no\.", prompt):
        return "yes" if int(m[1]) % 2 == 0 else "no"
    if m := re.fullmatch(r"Is (\d+) divisible by (\d+)\? Answer yes or no\.", prompt):
        return "yes" if int(m[1]) % int(m[2]) == 0 else "no"
    if m := re.fullmatch(r"Is (?:an? )?(\w+) (?:an? )?([\w ]+)\? Answer yes or no\.", prompt):
        return "yes" if m[1] in CATEGORIES.get(m[2], []) else "no"
    if m := re.fullmatch(r"All (\w+)s are (\w+)\. (\w+) is a \1\. Is \3 \2\? Answer yes or no\.", prompt):
        return "yes"
    if m := re.fullmatch(r"No (\w+) is (\w+)\. (\w+) is a \1\. Is \3 \2\? Answer yes or no\.", prompt):
        return "no"
    options = dict(re.findall(r"^([A-D])\. (.+)$", prompt, re.MULTILINE))
    if m := re.match(r"What is (\d+) \+ (\d+)\?", prompt):
        return next(k for k, v in options.items() if int(v) == int(m[1]) + int(m[2]))
    if m := re.match(r"Which number is the (largest|smallest)\?", prompt):
        pick = max if m[1] == "largest" else min
        return next(k for k, v in options.items() if int(v) == pick(int(x) for x in options.values()))
    if m := re.match(r"Which of these is (?:an? )?([\w ]+)\?", prompt):
        return next(k for k, v in options.items() if v in CATEGORIES[m[1]])
    if m := re.fullmatch(r"How many (\w+) are in ([\d.]+) (\w+)\?", prompt):
        for big, bigs, small, smalls, factor in UNITS:
            value = Fraction(m[2])
            if m[1] == smalls and m[3] in (big, bigs):
                return _fmt(value * factor)
            if m[1] == bigs and m[3] in (small, smalls):
                return _fmt(value / factor)
    if m := re.match(r"(\w+) has (\d+) (\w+) and gets (\d+) more\.", prompt):
        return str(int(m[2]) + int(m[4]))
    if m := re.match(r"(\w+) has (\d+) (\w+) and gives away (\d+)\.", prompt):
        return str(int(m[2]) - int(m[4]))
    if m := re.match(r"A box holds (\d+) \w+\. How many \w+ are in (\d+) boxes\?", prompt):
        return str(int(m[1]) * int(m[2]))
    if m := re.match(r"\w+ shares (\d+) \w+ equally among (\d+) friends\.", prompt):
        return str(int(m[1]) // int(m[2]))
    if m := re.match(r"\w+ has (\d+) \w+ and buys (\d+) packs of (\d+) \w+\.", prompt):
        return str(int(m[1]) + int(m[2]) * int(m[3]))
    if m := re.match(r"One [\w ]+ costs (\d+) dollars\. How many dollars do (\d+) ", prompt):
        return str(int(m[1]) * int(m[2]))
    return None


def _fmt(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


def test_gold_answers_are_right_by_an_independent_check():
    instructions = procedural_instructions(size=600, seed=11)
    checked = 0
    for instruction in instructions:
        if instruction.answer is None:
            continue
        expected = _independent_gold(instruction.text)
        assert expected is not None, f"no independent check for {instruction.text!r}"
        assert expected == instruction.answer, instruction.text
        checked += 1
    assert checked == 480


def test_expert_examples_are_correct_worked_answers():
    for domain in procedural_domains():
        examples = procedural_expert_examples(domain, 40, seed=5)
        assert len(examples) == 40 and examples == procedural_expert_examples(domain, 40, seed=5)
        assert all(prompt.strip() and response.strip() for prompt, response in examples)
        answer_type = DOMAINS.get(domain).answer_type
        for k in range(40):
            problem = DOMAINS.get(domain).generate(random.Random(f"expert:5:{domain}:{k}"))
            assert (problem.prompt, problem.response) == examples[k]
            if answer_type is not None:
                assert score_answer(answer_type, problem.response, problem.answer) == 1.0, problem
    assert procedural_expert_examples("arithmetic", 3, seed=0)[0][1].endswith(".")
    eval_prompts = {i.text for i in procedural_instructions(size=100, seed=5, domains=["arithmetic"])}
    expert_prompts = {p for p, _ in procedural_expert_examples("arithmetic", 100, seed=5)}
    assert len(eval_prompts & expert_prompts) < 5
    with pytest.raises(KeyError, match="unknown procedural domain 'poetry'"):
        procedural_expert_examples("poetry", 1)
