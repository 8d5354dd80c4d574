"""Seeds derived from names, so every random choice is reproducible and independent of call order."""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from a base seed and keys (round, stage, member...), the same in every process and Python."""
    text = "\x1f".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def derive_rng(seed: int, *keys: object) -> random.Random:
    return random.Random(derive_seed(seed, *keys))
