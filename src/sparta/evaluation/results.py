"""Evaluation results: per-cell means with bootstrap intervals, the best member and the pool mean, and their files.

``eval.json``::

    {"rounds": [0, 2], "tasks": ["procedural"],
     "scores": [{"member": "a", "round": 0, "task": "procedural", "score": 0.4, "low": 0.3, "high": 0.5, "n": 80}, ...],
     "best": {"0": {"procedural": {"member": "a", "score": 0.4, "low": 0.3, "high": 0.5, "n": 80}}, ...},
     "mean": {"0": {"procedural": {"score": 0.35, "low": 0.28, "high": 0.42, "n": 80}}, ...}}

``best`` and ``mean`` are keyed by round (as a string, JSON keys being strings) then task. ``mean`` is the pool's
mean score: per item the mean over members, then the mean over items, with its bootstrap interval. ``n`` counts
scored items (a judgment that could not be read is left out). ``eval.csv`` holds the ``scores`` rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparta.evaluation.bootstrap import Interval, bootstrap_mean
from sparta.rundir import atomic_write_text, round_dir, write_json, write_jsonl
from sparta.seeding import derive_seed

EVAL_JSON = "eval.json"
EVAL_CSV = "eval.csv"
RESPONSES_DIR = "eval_responses"
CSV_COLUMNS = ("member", "round", "task", "score", "low", "high", "n")

Cell = tuple[int, str, str]
"""(round, task, member)"""


@dataclass
class EvalResult:
    """Everything ``eval.json`` holds, plus which cells this call computed (the rest came from the cache)."""

    rounds: list[int]
    tasks: list[str]
    members: list[str]
    scores: list[dict[str, Any]]
    best: dict[str, dict[str, dict[str, Any]]]
    mean: dict[str, dict[str, dict[str, Any]]]
    computed: list[Cell] = field(default_factory=list)
    failures: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "tasks": self.tasks, "scores": self.scores, "best": self.best, "mean": self.mean}

    def score(self, member: str, r: int, task: str) -> dict[str, Any]:
        return next(s for s in self.scores if (s["member"], s["round"], s["task"]) == (member, r, task))


def _scored(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {row["instruction_id"]: row["score"] for row in rows if row["score"] is not None}


def _pool_mean(cells: Sequence[Sequence[dict[str, Any]]], seed: int) -> Interval:
    """Per item the mean over the members that have a score for it, then the bootstrap over items."""
    per_item: dict[str, list[float]] = {}
    for rows in cells:
        for item, score in _scored(rows).items():
            per_item.setdefault(item, []).append(score)
    return bootstrap_mean([sum(v) / len(v) for v in per_item.values()], seed)


def _best(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The highest-scoring member (the first in pool order on a tie)."""
    scored = [e for e in entries if e["score"] is not None]
    if not scored:
        return {"member": None, "score": None, "low": None, "high": None, "n": 0}
    top = max(scored, key=lambda e: e["score"])  # max keeps the first of equal scores
    return {k: top[k] for k in ("member", "score", "low", "high", "n")}


def summarise(
    rows: dict[Cell, list[dict[str, Any]]],
    rounds: list[int],
    tasks: list[str],
    members: list[str],
    seed: int,
) -> EvalResult:
    """Means and intervals of every (round, task, member) cell in ``rows``; bootstraps seeded by cell."""
    scores: list[dict[str, Any]] = []
    best: dict[str, dict[str, dict[str, Any]]] = {}
    mean: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rounds:
        for task in tasks:
            entries = []
            for member in members:
                interval = bootstrap_mean(
                    list(_scored(rows[(r, task, member)]).values()),
                    derive_seed(seed, "eval-bootstrap", r, task, member),
                )
                entries.append({"member": member, "round": r, "task": task, **interval.to_dict()})
            scores += entries
            best.setdefault(str(r), {})[task] = _best(entries)
            pooled = _pool_mean([rows[(r, task, m)] for m in members], derive_seed(seed, "eval-bootstrap", r, task))
            mean.setdefault(str(r), {})[task] = pooled.to_dict()
    failures = sum(row["score"] is None for cell in rows.values() for row in cell)
    return EvalResult(list(rounds), list(tasks), list(members), scores, best, mean, failures=failures)


# ------------------------------------------------------------------------------------------------ files


def responses_path(run_dir: Path, r: int, task: str) -> Path:
    return round_dir(Path(run_dir) / RESPONSES_DIR, r) / f"{task}.jsonl"


def write_responses(run_dir: Path, r: int, task: str, rows: Sequence[dict[str, Any]]) -> None:
    write_jsonl(responses_path(run_dir, r, task), rows)


def write_results(run_dir: Path, result: EvalResult) -> None:
    """``eval.json`` and ``eval.csv``, each written atomically."""
    write_json(Path(run_dir) / EVAL_JSON, result.to_json())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if row[k] is None else row[k]) for k in CSV_COLUMNS} for row in result.scores)
    atomic_write_text(Path(run_dir) / EVAL_CSV, buffer.getvalue())


# ------------------------------------------------------------------------------------------------ table


def format_interval(entry: dict[str, Any]) -> str:
    """``0.42 [0.33, 0.51]``, or ``-`` when nothing was scored."""
    if entry.get("score") is None:
        return "-"
    return f"{entry['score']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}]"


def eval_table_rows(result: EvalResult) -> list[dict[str, str]]:
    """Per round: one row per member (a column per task), then "best member" and "pool mean" rows."""
    table = []
    for r in result.rounds:
        for member in result.members:
            cells = {task: format_interval(result.score(member, r, task)) for task in result.tasks}
            table.append({"round": str(r), "member": member, **cells})
        best = {}
        for task in result.tasks:
            entry = result.best[str(r)][task]
            best[task] = f"{entry['member']} {format_interval(entry)}" if entry["member"] else "-"
        table.append({"round": str(r), "member": "best member", **best})
        pooled = {task: format_interval(result.mean[str(r)][task]) for task in result.tasks}
        table.append({"round": str(r), "member": "pool mean", **pooled})
    return table
