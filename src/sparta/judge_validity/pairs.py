"""Pairs of the pool's own answers to one gold-scored item, built so that one property differs.

Each pair has a ``first`` side, the one whose preference is counted (``FIRST_SIDE``):

- ``decided``:     one right and one wrong answer; first = the right one, so the rate is the judge's accuracy.
                   From one member sampling at one temperature (``same_source``) wherever such a pair exists on
                   the item, one per (member, temperature); otherwise the closest cross pair (same member first,
                   then the nearest temperature), one per item.
- ``temperature``: equal correctness, the same member (unless ``across_members``), two temperatures; first = the
                   lower one. One per (item, member, correctness): the lowest against the highest temperature.
- ``length``:      equal correctness, same member and temperature, the longer answer at least ``min_length_ratio``
                   times the shorter (in tokens); first = the shorter. One per (item, member, temperature,
                   correctness): the shortest against the longest.

Answers cut by ``max_new_tokens`` are left out of the controls: being cut is a real flaw, not a bias. Samples are
taken in index order, so the same samples always give the same pairs; ``max_pairs`` keeps a seeded choice per kind
(same-source pairs first).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

from sparta.seeding import derive_seed

KINDS = ("decided", "temperature", "length")

FIRST_SIDE = {
    "decided": "the right answer",
    "temperature": "the lower-temperature answer",
    "length": "the shorter answer",
}
"""What the ``first`` side of a pair of each kind is: a judge's rate is how often it prefers that side."""


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One sampled answer to a gold-scored item and its verdict against the gold answer."""

    id: str
    item_id: str
    member: str
    source: str
    temperature: float
    index: int
    text: str
    tokens: int
    correct: bool
    truncated: bool = False


@dataclass(frozen=True, kw_only=True)
class GoldPair:
    """Two answers to one item; ``first`` is the side whose preference the pair's kind counts."""

    kind: str
    item_id: str
    first: Sample
    second: Sample
    same_source: bool

    @property
    def authors(self) -> set[str]:
        return {self.first.member, self.second.member}


def judges_of(pair: GoldPair, members: Sequence[str]) -> list[str]:
    """As in a SPARTA match: the members who wrote neither side; every member when no other is left."""
    others = [m for m in members if m not in pair.authors]
    return others or list(members)


def _grouped(samples: Iterable[Sample], key: Callable[[Sample], Hashable]) -> list[list[Sample]]:
    """Samples grouped by ``key`` (groups in key order, samples in index order)."""
    ordered = sorted(samples, key=lambda s: (repr(key(s)), s.index, s.id))
    return [list(group) for _, group in groupby(ordered, key=lambda s: repr(key(s)))]


def _closest_cross(right: Sequence[Sample], wrong: Sequence[Sample]) -> tuple[Sample, Sample] | None:
    """The right/wrong pair nearest to one source: same member first, then the closest temperatures."""
    candidates = [(r, w) for r in right for w in wrong]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda p: (p[0].member != p[1].member, abs(p[0].temperature - p[1].temperature), p[0].id, p[1].id),
    )


def decided_pairs(samples: Iterable[Sample]) -> list[GoldPair]:
    """One right-vs-wrong pair per (item, member, temperature) that has both; else one cross pair per item."""
    pairs = []
    for item in _grouped(samples, lambda s: s.item_id):
        found = []
        for group in _grouped(item, lambda s: (s.member, s.temperature)):
            right, wrong = [s for s in group if s.correct], [s for s in group if not s.correct]
            if right and wrong:
                found.append(
                    GoldPair(kind="decided", item_id=item[0].item_id, first=right[0], second=wrong[0], same_source=True)
                )
        if not found:
            cross = _closest_cross([s for s in item if s.correct], [s for s in item if not s.correct])
            if cross:
                found.append(
                    GoldPair(
                        kind="decided", item_id=item[0].item_id, first=cross[0], second=cross[1], same_source=False
                    )
                )
        pairs += found
    return pairs


def temperature_pairs(samples: Iterable[Sample], across_members: bool = False) -> list[GoldPair]:
    """Equal correctness, lowest against highest temperature, per (item, member, correctness)."""
    complete = [s for s in samples if not s.truncated]
    key = (lambda s: (s.item_id, s.correct)) if across_members else (lambda s: (s.item_id, s.member, s.correct))
    pairs = []
    for group in _grouped(complete, key):
        low_t, high_t = min(s.temperature for s in group), max(s.temperature for s in group)
        if low_t == high_t:
            continue
        low = next(s for s in group if s.temperature == low_t)
        high = next(s for s in group if s.temperature == high_t)
        pairs.append(
            GoldPair(
                kind="temperature", item_id=low.item_id, first=low, second=high, same_source=low.member == high.member
            )
        )
    return pairs


def length_pairs(samples: Iterable[Sample], min_length_ratio: float = 1.5) -> list[GoldPair]:
    """Equal correctness, same member and temperature, shortest against longest when the ratio is large enough."""
    if min_length_ratio < 1:
        raise ValueError(f"min_length_ratio must be at least 1, got {min_length_ratio}")
    complete = [s for s in samples if not s.truncated]
    pairs = []
    for group in _grouped(complete, lambda s: (s.item_id, s.member, s.temperature, s.correct)):
        short = min(group, key=lambda s: (s.tokens, s.index))
        long = max(group, key=lambda s: (s.tokens, -s.index))
        if long.tokens > short.tokens and long.tokens >= min_length_ratio * short.tokens:
            pairs.append(GoldPair(kind="length", item_id=short.item_id, first=short, second=long, same_source=True))
    return pairs


def capped(pairs: Sequence[GoldPair], max_pairs: int | None, seed: int) -> list[GoldPair]:
    """At most ``max_pairs``: same-source pairs first, then a seeded hash order; the kept ones in their order."""
    if max_pairs is None or len(pairs) <= max_pairs:
        return list(pairs)
    rank = {id(p): (not p.same_source, derive_seed(seed, "gold-pairs", p.kind, p.first.id, p.second.id)) for p in pairs}
    keep = {id(p) for p in sorted(pairs, key=lambda p: rank[id(p)])[:max_pairs]}
    return [p for p in pairs if id(p) in keep]


def build_pairs(
    samples: Sequence[Sample],
    *,
    min_length_ratio: float = 1.5,
    max_pairs: int | None = None,
    seed: int = 0,
    across_members: bool = False,
) -> list[GoldPair]:
    """Every kind's pairs (decided, temperature, length), each kind capped at ``max_pairs``."""
    if len({s.id for s in samples}) != len(samples):
        raise ValueError("sample ids must be unique")
    built = {
        "decided": decided_pairs(samples),
        "temperature": temperature_pairs(samples, across_members),
        "length": length_pairs(samples, min_length_ratio),
    }
    return [pair for kind in KINDS for pair in capped(built[kind], max_pairs, seed)]
