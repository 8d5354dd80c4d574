"""Match-making: balanced first combatants, alpha and k respected, random tie-break, determinism."""

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparta.records import Instruction
from sparta.tournament.matchmaking import closest_candidates, first_combatants, make_matches

MEMBERS = [f"m{i}" for i in range(10)]


def instructions(n):
    return [Instruction(id=f"i{i}", text=f"q{i}") for i in range(n)]


@given(n=st.integers(1, 200), m=st.integers(2, 12), seed=st.integers(0, 10**6))
@settings(max_examples=100, deadline=None)
def test_first_combatants_are_balanced(n, m, seed):
    members = [f"m{i}" for i in range(m)]
    counts = Counter(first_combatants(members, n, random.Random(seed)))
    full = [counts.get(x, 0) for x in members]
    assert max(full) - min(full) <= 1
    assert sum(full) == n


def test_alpha_share_of_random_opponents():
    # ratings spread so the 2 closest of m0 are m1 and m2: any other opponent must come from the alpha branch
    ratings = {m: 100.0 + 10 * i for i, m in enumerate(MEMBERS)}
    matches = make_matches(instructions(20000), ratings, alpha=0.3, k=2, rng=random.Random(7))
    of_m0 = [x.model_b for x in matches if x.model_a == "m0"]
    far = sum(o not in ("m1", "m2") for o in of_m0) / len(of_m0)
    # alpha branch picks uniformly among 9 others, 7 of which are far: expected 0.3 * 7/9 = 0.2333
    assert far == pytest.approx(0.3 * 7 / 9, abs=0.03)


def test_alpha_one_is_uniform_and_alpha_zero_is_top_k_only():
    ratings = {m: 100.0 + 10 * i for i, m in enumerate(MEMBERS)}
    uniform = make_matches(instructions(18000), ratings, alpha=1.0, k=2, rng=random.Random(1))
    counts = Counter(x.model_b for x in uniform if x.model_a == "m5")
    assert set(counts) == set(MEMBERS) - {"m5"}
    assert max(counts.values()) / min(counts.values()) < 1.3
    top = make_matches(instructions(2000), ratings, alpha=0.0, k=2, rng=random.Random(1))
    assert {x.model_b for x in top if x.model_a == "m5"} == {"m4", "m6"}
    assert {x.model_b for x in top if x.model_a == "m0"} == {"m1", "m2"}


def test_closest_ties_are_broken_at_random_not_by_order():
    ratings = {m: 100.0 for m in MEMBERS}
    rng = random.Random(3)
    picks = Counter(c for _ in range(3000) for c in closest_candidates("m0", ratings, 1, rng))
    assert set(picks) == set(MEMBERS) - {"m0"}
    assert max(picks.values()) / min(picks.values()) < 1.5


def test_never_fights_itself_and_is_deterministic():
    ratings = {m: 100.0 + (i % 3) for i, m in enumerate(MEMBERS)}
    a = make_matches(instructions(500), ratings, 0.6, 5, random.Random(11))
    b = make_matches(instructions(500), ratings, 0.6, 5, random.Random(11))
    assert a == b
    assert all(x.model_a != x.model_b for x in a)
    assert [x.index for x in a] == list(range(500))


def test_needs_two_members():
    with pytest.raises(ValueError, match="at least 2"):
        make_matches(instructions(3), {"solo": 100.0}, 0.5, 1, random.Random(0))
