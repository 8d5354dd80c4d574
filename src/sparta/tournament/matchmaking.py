"""Who fights whom (DESIGN section 1, step 2).

Every member goes first equally often (shuffled blocks of m); the opponent is uniform among the others with
probability ``alpha``, otherwise uniform among the ``k`` members whose rating is closest to the first one's.
Ties in closeness are broken at random, not by list order (the authors' stable sort favours early members).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from sparta.records import Instruction, Match


def first_combatants(members: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """``n`` first combatants in shuffled blocks of ``len(members)``: counts differ by at most one."""
    order: list[str] = []
    while len(order) < n:
        block = list(members)
        rng.shuffle(block)
        order.extend(block)
    return order[:n]


def closest_candidates(first: str, ratings: Mapping[str, float], k: int, rng: random.Random) -> list[str]:
    """The ``k`` other members whose rating is closest to ``first``'s, ties broken by a random key."""
    others = [m for m in ratings if m != first]
    keyed = [(abs(ratings[m] - ratings[first]), rng.random(), m) for m in others]
    keyed.sort()
    return [m for _, _, m in keyed[:k]]


def pick_opponent(first: str, ratings: Mapping[str, float], alpha: float, k: int, rng: random.Random) -> str:
    if rng.random() < alpha:
        return rng.choice([m for m in ratings if m != first])
    return rng.choice(closest_candidates(first, ratings, k, rng))


def make_matches(
    instructions: Sequence[Instruction],
    ratings: Mapping[str, float],
    alpha: float,
    k: int,
    rng: random.Random,
) -> list[Match]:
    """One match per instruction, using the ratings given (those at the start of the round)."""
    members = list(ratings)
    if len(members) < 2:
        raise ValueError(f"a tournament needs at least 2 members, got {len(members)}")
    firsts = first_combatants(members, len(instructions), rng)
    return [
        Match(index=i, instruction=inst, model_a=first, model_b=pick_opponent(first, ratings, alpha, k, rng))
        for i, (inst, first) in enumerate(zip(instructions, firsts))
    ]
