"""From per-item rows to :class:`EvalResults`: each cell's mean with its bootstrap interval, the best member, the
pool mean.

The pool mean is defined here once (``pool_item_means``) and written into ``eval.json``; the report and
``sparta compare`` show that number, never one of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sparta.evaluation.bootstrap import bootstrap_mean
from sparta.evaluation.results import BestScore, Estimate, EvalResults, MemberScore
from sparta.seeding import derive_seed

Cell = tuple[int, str, str]
"""(round, task, member)"""


def scored_items(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Item id -> score for the rows that have a score (a judgment that could not be read has none)."""
    return {row["instruction_id"]: row["score"] for row in rows if row["score"] is not None}


def pool_item_means(per_member: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The pool mean per item: the mean over the members that have a score for it.

    The pool's mean score is the mean of these over items, so an item weighs the same whatever number of members
    could be scored on it.
    """
    per_item: dict[str, list[float]] = {}
    for scores in per_member:
        for item, score in scores.items():
            per_item.setdefault(item, []).append(score)
    return {item: sum(values) / len(values) for item, values in per_item.items()}


def best_of(entries: Sequence[MemberScore]) -> BestScore:
    """The highest-scoring member (the first in pool order on a tie)."""
    scored = [e for e in entries if e.score is not None]
    if not scored:
        return BestScore(score=None, n=0)
    top = max(scored, key=lambda e: e.score)  # max keeps the first of equal scores
    return BestScore(member=top.member, score=top.score, low=top.low, high=top.high, n=top.n)


def summarise(
    rows: Mapping[Cell, Sequence[dict[str, Any]]],
    rounds: Sequence[int],
    tasks: Sequence[str],
    members: Sequence[str],
    seed: int,
) -> EvalResults:
    """Means and intervals of every (round, task, member) cell in ``rows``; bootstraps seeded by cell."""
    scores: list[MemberScore] = []
    best: dict[int, dict[str, BestScore]] = {}
    mean: dict[int, dict[str, Estimate]] = {}
    for round_index in rounds:
        for task in tasks:
            entries = []
            for member in members:
                interval = bootstrap_mean(
                    list(scored_items(rows[(round_index, task, member)]).values()),
                    derive_seed(seed, "eval-bootstrap", round_index, task, member),
                )
                entries.append(MemberScore(member=member, round=round_index, task=task, **interval.to_dict()))
            scores += entries
            best.setdefault(round_index, {})[task] = best_of(entries)
            items = pool_item_means([scored_items(rows[(round_index, task, m)]) for m in members])
            pooled = bootstrap_mean(list(items.values()), derive_seed(seed, "eval-bootstrap", round_index, task))
            mean.setdefault(round_index, {})[task] = Estimate(**pooled.to_dict())
    return EvalResults(rounds=list(rounds), tasks=list(tasks), scores=scores, best=best, mean=mean)


def unscored(rows: Mapping[Cell, Sequence[dict[str, Any]]]) -> int:
    """Items that could not be scored (judgments that could not be read), over all cells."""
    return sum(row["score"] is None for cell in rows.values() for row in cell)
