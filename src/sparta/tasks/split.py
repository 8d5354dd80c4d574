"""Hold instructions out for evaluation, and draw each round's instructions with a seed derived for that round.

Both depend on instruction ids and seeds only, never on the order of the input list or on Python's salted
``hash``, so a resumed or re-run experiment sees exactly the same instructions.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from sparta.records import Instruction


def _unit_hash(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for the given parts."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_holdout(
    instructions: Sequence[Instruction], fraction: float, seed: int
) -> tuple[list[Instruction], list[Instruction]]:
    """(train, heldout): an instruction is held out when the hash of (seed, its id) falls below ``fraction``.

    Each instruction's side depends on its id alone, so the split does not move when the list is reordered or grows.
    Both parts keep the input order.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"holdout fraction must be in [0, 1], got {fraction}")
    train, heldout = [], []
    for instruction in instructions:
        (heldout if _unit_hash("holdout", seed, instruction.id) < fraction else train).append(instruction)
    return train, heldout


def round_seed(seed: int, epoch: int) -> int:
    """The seed of one pass over the instruction set: rounds slice it, so each round draws afresh."""
    return int(_unit_hash("epoch", seed, epoch) * 2**63)


def draw_round(train: Sequence[Instruction], n: int, round_index: int, seed: int) -> list[Instruction]:
    """``n`` instructions for round ``round_index`` (numbered from 1), fresh every round.

    The set is shuffled once per epoch (seeded by ``seed`` and the epoch) and rounds take consecutive slices,
    so no instruction comes back until the whole set has been used; within a round there are no duplicates
    while ``n`` does not exceed the set.
    """
    if n < 0:
        raise ValueError(f"cannot draw {n} instructions")
    if n and not train:
        raise ValueError("cannot draw instructions from an empty set")
    if round_index < 1:
        raise ValueError(f"rounds are numbered from 1, got {round_index}")
    pool = sorted(train, key=lambda instruction: instruction.id)
    position = (round_index - 1) * n
    drawn: list[Instruction] = []
    seen: set[str] = set()
    orders: dict[int, list[Instruction]] = {}
    while len(drawn) < n:
        epoch, offset = divmod(position, len(pool))
        position += 1
        if epoch not in orders:
            orders[epoch] = list(pool)
            random.Random(round_seed(seed, epoch)).shuffle(orders[epoch])
        item = orders[epoch][offset]
        if n <= len(pool) and item.id in seen:  # a round that spans two passes must not repeat an item
            continue
        seen.add(item.id)
        drawn.append(item)
    return drawn
