"""``sparta eval``'s console table: one row per (round, member), then the round's best member and pool mean."""

from __future__ import annotations

from sparta.evaluation.results import Estimate, EvalResults


def format_interval(entry: Estimate) -> str:
    """``0.42 [0.33, 0.51]``, or ``-`` when nothing was scored."""
    if entry.score is None:
        return "-"
    if entry.low is None or entry.high is None:
        return f"{entry.score:.2f}"
    return f"{entry.score:.2f} [{entry.low:.2f}, {entry.high:.2f}]"


def eval_table_rows(results: EvalResults) -> list[dict[str, str]]:
    """Per round: one row per member (a column per task), then "best member" and "pool mean" rows."""
    table = []
    for round_index in results.rounds:
        for member in results.members():
            cells = {task: format_interval(results.score(member, round_index, task)) for task in results.tasks}
            table.append({"round": str(round_index), "member": member, **cells})
        best = {}
        for task in results.tasks:
            entry = results.best[round_index][task]
            best[task] = f"{entry.member} {format_interval(entry)}" if entry.member else "-"
        table.append({"round": str(round_index), "member": "best member", **best})
        pooled = {task: format_interval(results.mean[round_index][task]) for task in results.tasks}
        table.append({"round": str(round_index), "member": "pool mean", **pooled})
    return table
