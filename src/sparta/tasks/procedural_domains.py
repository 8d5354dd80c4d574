"""The domains of the procedural suite: each draws one problem (prompt, worked answer, gold) from a seeded RNG.

Worked answers end in the form the scorers read ("The answer is 42.", "the answer is (B).", "Yes. ...") so they
serve both as correct references and as SFT data for domain experts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from sparta.registry import Registry
from sparta.tasks.procedural_vocab import (
    ADJECTIVES,
    CATEGORIES,
    GOODS,
    ITEMS,
    NAMES,
    NONSENSE_NOUNS,
    TITLE_PATTERNS,
    TOPICS,
    UNITS,
)


@dataclass(frozen=True)
class Problem:
    prompt: str
    response: str  # a worked, correct answer
    answer: str | None  # the gold answer; None for open prompts
    kind: str  # which template made it


@dataclass(frozen=True)
class Domain:
    answer_type: str | None
    kinds: dict[str, Callable[[random.Random], Problem]]

    def generate(self, rng: random.Random) -> Problem:
        return self.kinds[rng.choice(sorted(self.kinds))](rng)


DOMAINS: Registry[Domain] = Registry("procedural domain")


def _fmt(value: Fraction | int) -> str:
    """An exact number as the shortest decimal text: 350, 2.5, 0.25."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6f}".rstrip("0").rstrip(".")


def _article(noun: str) -> str:
    """ "an apple", "a pear"; colours stay bare ("red")."""
    if noun in CATEGORIES["color"]:
        return noun
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


LETTERS = "ABCD"


def _options(rng: random.Random, correct: str, distractors: list[str]) -> tuple[str, str]:
    """The four options shuffled as "A. ..." lines, and the letter of the correct one."""
    options = [correct, *distractors]
    rng.shuffle(options)
    lines = "\n".join(f"{letter}. {option}" for letter, option in zip(LETTERS, options, strict=True))
    return lines, LETTERS[options.index(correct)]


# --- arithmetic word problems ("number") ----------------------------------------------------------------------


def _add(rng: random.Random) -> Problem:
    name, item, a, b = rng.choice(NAMES), rng.choice(ITEMS), rng.randint(2, 60), rng.randint(2, 60)
    return Problem(
        prompt=f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
        response=f"{a} + {b} = {a + b}. The answer is {a + b}.",
        answer=str(a + b),
        kind="add",
    )


def _subtract(rng: random.Random) -> Problem:
    name, item, a = rng.choice(NAMES), rng.choice(ITEMS), rng.randint(10, 99)
    b = rng.randint(1, a - 1)
    return Problem(
        prompt=f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?",
        response=f"{a} - {b} = {a - b}. The answer is {a - b}.",
        answer=str(a - b),
        kind="subtract",
    )


def _multiply(rng: random.Random) -> Problem:
    item, a, b = rng.choice(ITEMS), rng.randint(2, 12), rng.randint(2, 12)
    return Problem(
        prompt=f"A box holds {a} {item}. How many {item} are in {b} boxes?",
        response=f"{b} * {a} = {a * b}. The answer is {a * b}.",
        answer=str(a * b),
        kind="multiply",
    )


def _divide(rng: random.Random) -> Problem:
    name, item, each, friends = rng.choice(NAMES), rng.choice(ITEMS), rng.randint(2, 12), rng.randint(2, 9)
    total = each * friends
    return Problem(
        prompt=f"{name} shares {total} {item} equally among {friends} friends. How many {item} does each friend get?",
        response=f"{total} / {friends} = {each}. The answer is {each}.",
        answer=str(each),
        kind="divide",
    )


def _two_step(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    packs, per_pack, extra = rng.randint(2, 9), rng.randint(2, 12), rng.randint(1, 20)
    bought = packs * per_pack
    total = bought + extra
    return Problem(
        prompt=f"{name} has {extra} {item} and buys {packs} packs of {per_pack} {item}. "
        f"How many {item} does {name} have in total?",
        response=f"{packs} * {per_pack} = {bought}. {bought} + {extra} = {total}. The answer is {total}.",
        answer=str(total),
        kind="two_step",
    )


def _cost(rng: random.Random) -> Problem:
    (one, many), price, count = rng.choice(GOODS), rng.randint(2, 25), rng.randint(2, 9)
    return Problem(
        prompt=f"One {one} costs {price} dollars. How many dollars do {count} {many} cost?",
        response=f"{count} * {price} = {count * price}. The answer is {count * price}.",
        answer=str(count * price),
        kind="cost",
    )


DOMAINS.register("arithmetic")(
    Domain(
        "number",
        {
            "add": _add,
            "subtract": _subtract,
            "multiply": _multiply,
            "divide": _divide,
            "two_step": _two_step,
            "cost": _cost,
        },
    )
)


# --- unit conversion ("number") -------------------------------------------------------------------------------


def _amount(value: Fraction, singular: str, plural: str) -> str:
    return f"{_fmt(value)} {singular if value == 1 else plural}"


def _half_step(rng: random.Random, allow_half: bool) -> Fraction:
    whole = Fraction(rng.randint(1, 20))
    return whole + Fraction(1, 2) if allow_half and rng.random() < 0.3 else whole


def _to_small(rng: random.Random) -> Problem:
    big, bigs, small, smalls, factor = rng.choice(UNITS)
    value = _half_step(rng, allow_half=True)
    result = value * factor
    return Problem(
        prompt=f"How many {smalls} are in {_amount(value, big, bigs)}?",
        response=f"1 {big} is {factor} {smalls}, so {_amount(value, big, bigs)} is {_fmt(value)} * {factor} = "
        f"{_amount(result, small, smalls)}. The answer is {_fmt(result)}.",
        answer=_fmt(result),
        kind="to_small",
    )


def _to_big(rng: random.Random) -> Problem:
    big, bigs, small, smalls, factor = rng.choice(UNITS)
    result = _half_step(rng, allow_half=factor % 2 == 0)
    value = result * factor
    return Problem(
        prompt=f"How many {bigs} are in {_amount(value, small, smalls)}?",
        response=f"1 {big} is {factor} {smalls}, so {_amount(value, small, smalls)} is {_fmt(value)} / {factor} = "
        f"{_amount(result, big, bigs)}. The answer is {_fmt(result)}.",
        answer=_fmt(result),
        kind="to_big",
    )


DOMAINS.register("unit_conversion")(Domain("number", {"to_small": _to_small, "to_big": _to_big}))


# --- multiple choice ("choice") -------------------------------------------------------------------------------


def _mc_category(rng: random.Random) -> Problem:
    category = rng.choice(sorted(CATEGORIES))
    correct = rng.choice(CATEGORIES[category])
    others = rng.sample([c for c in sorted(CATEGORIES) if c != category], 3)
    lines, letter = _options(rng, correct, [rng.choice(CATEGORIES[c]) for c in others])
    return Problem(
        prompt=f"Which of these is {_article(category)}?\n{lines}\nAnswer with the letter.",
        response=f"{_article(correct).capitalize()} is {_article(category)}, so the answer is ({letter}).",
        answer=letter,
        kind="category",
    )


def _mc_sum(rng: random.Random) -> Problem:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    total = a + b
    distractors = rng.sample([total + d for d in (-11, -10, -2, -1, 1, 2, 10, 11)], 3)
    lines, letter = _options(rng, str(total), [str(d) for d in distractors])
    return Problem(
        prompt=f"What is {a} + {b}?\n{lines}\nAnswer with the letter.",
        response=f"{a} + {b} = {total}, so the answer is ({letter}).",
        answer=letter,
        kind="sum",
    )


def _mc_extreme(rng: random.Random) -> Problem:
    numbers = rng.sample(range(10, 1000), 4)
    largest = rng.random() < 0.5
    target = max(numbers) if largest else min(numbers)
    word = "largest" if largest else "smallest"
    lines, letter = _options(rng, str(target), [str(n) for n in numbers if n != target])
    return Problem(
        prompt=f"Which number is the {word}?\n{lines}\nAnswer with the letter.",
        response=f"{target} is the {word}, so the answer is ({letter}).",
        answer=letter,
        kind=word,
    )


DOMAINS.register("multiple_choice")(
    Domain("choice", {"category": _mc_category, "sum": _mc_sum, "extreme": _mc_extreme})
)


# --- yes/no questions ("label") -------------------------------------------------------------------------------

_YES_NO = "Answer yes or no."


def _yn_compare(rng: random.Random) -> Problem:
    a, b = rng.sample(range(1, 1000), 2)
    if a > b:
        return Problem(
            prompt=f"Is {a} greater than {b}? {_YES_NO}",
            response=f"Yes. {a} is greater than {b}.",
            answer="yes",
            kind="compare",
        )
    return Problem(
        prompt=f"Is {a} greater than {b}? {_YES_NO}", response=f"No. {a} is less than {b}.", answer="no", kind="compare"
    )


def _yn_even(rng: random.Random) -> Problem:
    n = rng.randint(1, 999)
    if n % 2 == 0:
        return Problem(
            prompt=f"Is {n} an even number? {_YES_NO}",
            response=f"Yes. {n} = 2 * {n // 2}, so it is even.",
            answer="yes",
            kind="even",
        )
    return Problem(prompt=f"Is {n} an even number? {_YES_NO}", response=f"No. {n} is odd.", answer="no", kind="even")


def _yn_divisible(rng: random.Random) -> Problem:
    divisor, quotient = rng.randint(3, 9), rng.randint(2, 30)
    remainder = 0 if rng.random() < 0.5 else rng.randint(1, divisor - 1)
    n = divisor * quotient + remainder
    prompt = f"Is {n} divisible by {divisor}? {_YES_NO}"
    if remainder == 0:
        return Problem(prompt=prompt, response=f"Yes. {n} = {divisor} * {quotient}.", answer="yes", kind="divisible")
    return Problem(
        prompt=prompt, response=f"No. {n} = {divisor} * {quotient} + {remainder}.", answer="no", kind="divisible"
    )


def _yn_category(rng: random.Random) -> Problem:
    category = rng.choice(sorted(CATEGORIES))
    member = rng.random() < 0.5
    home = category if member else rng.choice([c for c in sorted(CATEGORIES) if c != category])
    word = rng.choice(CATEGORIES[home])
    prompt = f"Is {_article(word)} {_article(category)}? {_YES_NO}"
    if member:
        return Problem(
            prompt=prompt,
            response=f"Yes. {_article(word).capitalize()} is {_article(category)}.",
            answer="yes",
            kind="category",
        )
    return Problem(
        prompt=prompt,
        response=f"No. {_article(word).capitalize()} is {_article(home)}, not {_article(category)}.",
        answer="no",
        kind="category",
    )


def _yn_syllogism(rng: random.Random) -> Problem:
    noun, adjective, name = rng.choice(NONSENSE_NOUNS), rng.choice(ADJECTIVES), rng.choice(NAMES)
    if rng.random() < 0.5:
        return Problem(
            prompt=f"All {noun}s are {adjective}. {name} is a {noun}. Is {name} {adjective}? {_YES_NO}",
            response=f"Yes. {name} is a {noun}, and all {noun}s are {adjective}.",
            answer="yes",
            kind="syllogism",
        )
    return Problem(
        prompt=f"No {noun} is {adjective}. {name} is a {noun}. Is {name} {adjective}? {_YES_NO}",
        response=f"No. {name} is a {noun}, and no {noun} is {adjective}.",
        answer="no",
        kind="syllogism",
    )


DOMAINS.register("yes_no")(
    Domain(
        "label",
        {
            "compare": _yn_compare,
            "even": _yn_even,
            "divisible": _yn_divisible,
            "category": _yn_category,
            "syllogism": _yn_syllogism,
        },
    )
)


# --- writing (open, no gold) ----------------------------------------------------------------------------------


def _title_case(topic: str) -> str:
    return " ".join(word if word == "the" else word.capitalize() for word in topic.split())


def _w_sentence(rng: random.Random) -> Problem:
    topic = rng.choice(sorted(TOPICS))
    return Problem(prompt=f"Write one sentence about {topic}.", response=TOPICS[topic][0], answer=None, kind="sentence")


def _w_why(rng: random.Random) -> Problem:
    topic = rng.choice(sorted(TOPICS))
    return Problem(
        prompt=f"Explain in one sentence the importance of {topic}.", response=TOPICS[topic][1], answer=None, kind="why"
    )


def _w_words(rng: random.Random) -> Problem:
    topic = rng.choice(sorted(TOPICS))
    words = rng.sample(TOPICS[topic][2], 3)
    return Problem(
        prompt=f"List three words related to {topic}.",
        response=f"{words[0].capitalize()}, {words[1]}, {words[2]}.",
        answer=None,
        kind="words",
    )


def _w_title(rng: random.Random) -> Problem:
    topic = rng.choice(sorted(TOPICS))
    title = rng.choice(TITLE_PATTERNS).format(_title_case(topic))
    return Problem(
        prompt=f"Suggest a short title for a story about {topic}.", response=title, answer=None, kind="title"
    )


DOMAINS.register("writing")(
    Domain(None, {"sentence": _w_sentence, "why": _w_why, "words": _w_words, "title": _w_title})
)
