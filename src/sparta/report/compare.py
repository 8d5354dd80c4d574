"""``sparta compare``: several runs (a method, its baselines and ablations) side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparta.config import load_config
from sparta.report.leaderboard import round_summaries
from sparta.rundir import RunDirectoryError, read_json


def _interval(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("score") is None:
        return "-"
    low, high = entry.get("low"), entry.get("high")
    ci = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
    return f"{entry['score']:.3f}{ci}"


def compare_rows(run_dirs: Sequence[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per run: its set-up, what the combats kept, and (when evaluated) pool mean and best member
    at the first and last evaluated round, per task. Returns (rows, column names)."""
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
        eval_path = run_dir / "eval.json"
        if eval_path.exists():
            ev = read_json(eval_path)
            first, last = str(min(ev["rounds"])), str(max(ev["rounds"]))
            for task in ev["tasks"]:
                for label, r in (("initial", first), ("final", last)):
                    for kind in ("mean", "best"):
                        col = f"{task} {kind} {label}"
                        row[col] = _interval(ev.get(kind, {}).get(r, {}).get(task))
                        if col not in eval_columns:
                            eval_columns.append(col)
        rows.append(row)
    base = ["run", "members", "rounds", "judge", "aggregation", "alpha", "trains", "pairs kept", "judge failures"]
    return rows, base + eval_columns


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """The comparison as a GitHub table, to paste into a results page."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "-")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
