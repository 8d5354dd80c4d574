"""Who judges a match (``tournament.judges``), by name.

    others    the members not fighting: the paper's mutual evaluation
    all       every member, the two combatants included (needed with two members)
    external  one fixed judge outside the pool (``judge.external``), as a reward model would: the SPPO and
              Self-Rewarding-with-a-fixed-judge baselines. It never answers, never trains and has no reputation.

A panel lists judge names; the tribe scores with whoever is named, so an outside judge only has to be loaded by the
tribe under ``EXTERNAL_JUDGE`` (``sparta.backends.base.outside_judges``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sparta.records import Match
from sparta.registry import Registry

EXTERNAL_JUDGE = "external-judge"
"""The name an outside judge scores under, in judgments.jsonl and in the tribe; no member may take it."""

Panel = Callable[[Match, Sequence[str]], list[str]]
"""(match, the pool's members) -> the names of its judges."""

PANELS: Registry[Panel] = Registry("judge panel")


@PANELS.register("others")
def others(match: Match, members: Sequence[str]) -> list[str]:
    return [m for m in members if m not in (match.model_a, match.model_b)]


@PANELS.register("all")
def everyone(match: Match, members: Sequence[str]) -> list[str]:
    return list(members)


@PANELS.register("external")
def external(match: Match, members: Sequence[str]) -> list[str]:
    return [EXTERNAL_JUDGE]


OUTSIDE_PANELS = frozenset({"external"})
"""Panels whose judge is not a pool member: the tribe loads it, and it has no reputation to weight by."""
