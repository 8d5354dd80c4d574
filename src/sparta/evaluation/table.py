"""``sparta eval``'s console tables: scores per (round, member), then the paired changes from the first round."""

from __future__ import annotations

from sparta.evaluation.results import Estimate, EvalResults, PairedChange


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


def format_change(change: PairedChange | None) -> str:
    """``+0.05 [-0.02, +0.12] p=0.29 (+6/-2)``: the paired difference, its interval and, for 0/1 scores,
    McNemar's p-value with the items gained and lost; ``-`` when no item was scored in both rounds."""
    if change is None or change.diff is None:
        return "-"
    text = f"{change.diff:+.2f}"
    if change.low is not None and change.high is not None:
        text += f" [{change.low:+.2f}, {change.high:+.2f}]"
    if change.p_value is not None:
        text += f" p={change.p_value:.2g} (+{change.gained}/-{change.lost})"
    return text


def paired_table_rows(results: EvalResults) -> list[dict[str, str]]:
    """Per later round: each member's change from the baseline round on the same items, then the best member's
    (``a->b`` when another member is best now) and the pool mean's."""
    table = []
    for round_index, tasks in sorted(results.paired.items()):
        label = f"{min(c.baseline for c in tasks.values())} -> {round_index}" if tasks else str(round_index)
        for member in results.members():
            cells = {task: format_change(changes.members.get(member)) for task, changes in tasks.items()}
            table.append({"rounds": label, "member": member, **cells})
        best = {}
        for task, changes in tasks.items():
            top = changes.best
            who = top.member if top.member == top.baseline_member else f"{top.baseline_member}->{top.member}"
            best[task] = f"{who} {format_change(top)}" if top.diff is not None else "-"
        table.append({"rounds": label, "member": "best member", **best})
        table.append({"rounds": label, "member": "pool mean", **{t: format_change(c.mean) for t, c in tasks.items()}})
    return table
