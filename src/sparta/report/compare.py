"""``sparta compare``: several runs (a method, its baselines and ablations) side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparta.config import load_config
from sparta.evaluation.results import Estimate, EvalResults, load_results
from sparta.evaluation.table import format_change
from sparta.report.leaderboard import round_summaries
from sparta.rundir import RunDirectoryError


def _interval(entry: Estimate | None) -> str:
    if entry is None or entry.score is None:
        return "-"
    ci = f" [{entry.low:.2f}, {entry.high:.2f}]" if entry.low is not None and entry.high is not None else ""
    return f"{entry.score:.3f}{ci}"


def _eval_cells(results: EvalResults) -> dict[str, str]:
    """Pool mean and best member at the first and last evaluated round, and their paired change, per task."""
    cells = {}
    first, last = min(results.rounds), max(results.rounds)
    for task in results.tasks:
        for label, round_index in (("initial", first), ("final", last)):
            for kind, table in (("mean", results.mean), ("best", results.best)):
                cells[f"{task} {kind} {label}"] = _interval(table.get(round_index, {}).get(task))
        change = results.change(last, task)
        cells[f"{task} mean change"] = format_change(change.mean if change else None)
        cells[f"{task} best change"] = format_change(change.best if change else None)
    return cells


def compare_rows(run_dirs: Sequence[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per run: its set-up, what the combats kept, and (when evaluated) pool mean and best member at the
    first and last evaluated round with their paired change on the same items, per task. Returns (rows, column
    names)."""
    rows: list[dict[str, Any]] = []
    eval_columns: list[str] = []
    for run_dir in run_dirs:
        if not (run_dir / "config.yaml").exists():
            raise RunDirectoryError(f"{run_dir}: not a run directory (no config.yaml)")
        cfg = load_config(run_dir / "config.yaml")
        rounds = round_summaries(run_dir)
        judged = sum(r["judgments"] for r in rounds)
        row: dict[str, Any] = {
            "run": f"{cfg.run.name} ({run_dir.name})",
            "members": len(cfg.pool.members),
            "rounds": len(rounds),
            "judge": cfg.judge.type,
            "aggregation": cfg.tournament.aggregation,
            "alpha": cfg.tournament.alpha,
            "trains": "yes" if cfg.training.enabled else "no",
            "pairs kept": sum(r["pairs"] for r in rounds),
            "judge failures": f"{sum(r['judge_failures'] for r in rounds) / judged:.1%}" if judged else "-",
        }
        results = load_results(run_dir)
        if results is not None and results.rounds:
            cells = _eval_cells(results)
            row.update(cells)
            eval_columns += [column for column in cells if column not in eval_columns]
        rows.append(row)
    base = ["run", "members", "rounds", "judge", "aggregation", "alpha", "trains", "pairs kept", "judge failures"]
    return rows, base + eval_columns


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """The comparison as a GitHub table, to paste into a results page."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "-")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
