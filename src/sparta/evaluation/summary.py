"""From per-item rows to :class:`EvalResults`: each cell's mean with its bootstrap interval, the best member, the
pool mean, and every later round paired with the first on the same items.

The pool mean is defined here once (``pool_item_means``) and written into ``eval.json``; the report and
``sparta compare`` show that number, never one of their own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sparta.evaluation.bootstrap import bootstrap_mean
from sparta.evaluation.paired import discordant, mcnemar_exact, paired_difference, paired_scores
from sparta.evaluation.results import (
    BestChange,
    BestScore,
    Estimate,
    EvalResults,
    MemberScore,
    PairedChange,
    TaskChanges,
)
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
    binary: Collection[str] = (),
) -> EvalResults:
    """Means and intervals of every (round, task, member) cell in ``rows``, and the paired changes from the first
    round; bootstraps seeded by cell. ``binary`` names the tasks scored 0 or 1 (McNemar's test applies)."""
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
    baseline = min(rounds, default=0)
    paired = {
        round_index: {
            task: task_changes(rows, best, (baseline, round_index), task, members, seed, task in binary)
            for task in tasks
        }
        for round_index in rounds
        if round_index != baseline
    }
    return EvalResults(rounds=list(rounds), tasks=list(tasks), scores=scores, best=best, mean=mean, paired=paired)


def paired_change(before: Mapping[str, float], after: Mapping[str, float], seed: int, binary: bool) -> dict[str, Any]:
    """The fields of a :class:`PairedChange` from two rounds' item scores."""
    old, new = paired_scores(before, after)
    interval = paired_difference(old, new, seed)
    fields: dict[str, Any] = {"diff": interval.score, "low": interval.low, "high": interval.high, "n": interval.n}
    if binary and interval.n:
        gained, lost = discordant(old, new)
        fields.update(gained=gained, lost=lost, p_value=mcnemar_exact(gained, lost))
    return fields


def task_changes(
    rows: Mapping[Cell, Sequence[dict[str, Any]]],
    best: Mapping[int, Mapping[str, BestScore]],
    rounds: tuple[int, int],
    task: str,
    members: Sequence[str],
    seed: int,
    binary: bool,
) -> TaskChanges:
    """Every member, the pool mean and the best member at ``rounds[1]`` against themselves at ``rounds[0]``."""
    baseline, round_index = rounds
    before = {m: scored_items(rows[(baseline, task, m)]) for m in members}
    after = {m: scored_items(rows[(round_index, task, m)]) for m in members}

    def seeded(*what: object) -> int:
        return derive_seed(seed, "eval-paired", baseline, round_index, task, *what)

    changes = {m: PairedChange(**paired_change(before[m], after[m], seeded(m), binary)) for m in members}
    pooled = paired_change(
        pool_item_means(list(before.values())), pool_item_means(list(after.values())), seeded(), False
    )
    best_then, best_now = best[baseline][task].member, best[round_index][task].member
    if best_then is None or best_now is None:
        top = BestChange(diff=None, n=0, member=best_now, baseline_member=best_then)
    else:
        fields = paired_change(before[best_then], after[best_now], seeded("best"), binary)
        top = BestChange(**fields, member=best_now, baseline_member=best_then)
    return TaskChanges(baseline=baseline, members=changes, mean=PairedChange(**pooled), best=top)


def unscored(rows: Mapping[Cell, Sequence[dict[str, Any]]]) -> int:
    """Items that could not be scored (judgments that could not be read), over all cells."""
    return sum(row["score"] is None for cell in rows.values() for row in cell)
