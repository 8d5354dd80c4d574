"""Hold instructions out for evaluation, and draw each round's instructions with a seed derived for that round.

Both depend on instruction ids and seeds only, never on the order of the input list or on Python's salted
``hash``, so a resumed or re-run experiment sees exactly the same instructions.
"""

from __future__ import annotations

import hashlib
import random
from typing import Sequence

from sparta.records import Instruction


def _unit_hash(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for the given parts."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_holdout(instructions: Sequence[Instruction], fraction: float, seed: int
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


def round_seed(seed: int, round_index: int) -> int:
    """The seed of one round's draw, so that every round draws afresh (not the same prompts each round)."""
    return int(_unit_hash("round", seed, round_index) * 2**63)


def draw_round(train: Sequence[Instruction], n: int, round_index: int, seed: int) -> list[Instruction]:
    """``n`` instructions for round ``round_index``: without replacement within the round; when ``n`` exceeds
    the set, whole reshuffled copies follow one another (each instruction then appears n // len or one more times).
    """
    if n < 0:
        raise ValueError(f"cannot draw {n} instructions")
    if n and not train:
        raise ValueError("cannot draw instructions from an empty set")
    pool = sorted(train, key=lambda instruction: instruction.id)
    rng = random.Random(round_seed(seed, round_index))
    drawn: list[Instruction] = []
    while len(drawn) < n:
        drawn.extend(rng.sample(pool, min(len(pool), n - len(drawn))))
    return drawn
