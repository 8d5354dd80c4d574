"""The numbers a tracker logs, read from the run directory's files (never from a process's memory), so a round
logged by a resumed process is logged exactly as an uninterrupted one would have logged it.

Per round (step = the round index):

    rating/MEMBER, sigma/MEMBER          reputation and its deviation after the round (ratings.json)
    bradley_terry/MEMBER                 Bradley-Terry rating of the round's rated matches (pool mean 1000)
    matches/total, matches/rated, matches/unrated
    pairs/kept, pairs/dropped            dropped: rated matches without a pair (ties, margins under min_margin)
    judge/judgments, judge/failures, judge/failure_rate
    dpo/MEMBER/KEY                       every number of the member's entry in training.json (loss,
                                         rewards/margins, rewards/accuracies, steps, ...)
    training/KEY                         every other number of training.json (pairs, truncation counts, ...)
    time/STAGE                           wall seconds of each stage that a tracked process finished

Per evaluated round (``sparta eval``; step = the evaluated round, 0 = the initial pool):

    eval/TASK/MEMBER, eval/TASK/best, eval/TASK/pool_mean
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sparta.report.leaderboard import outcomes_of_round
from sparta.rundir import JUDGMENTS, OUTCOMES, PAIRS, RATINGS, TRAINING, read_json, read_jsonl, round_dir
from sparta.tournament.bradley_terry import bradley_terry

Metrics = dict[str, float]


def numbers(prefix: str, value: Any) -> Iterator[tuple[str, float]]:
    """Every finite number in a nested mapping, named by its path below ``prefix`` (booleans and text left out)."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from numbers(f"{prefix}/{key}", inner)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        yield prefix, float(value)


def _ratings(path: Path) -> Metrics:
    ratings = read_json(path / RATINGS)
    members = list(ratings["ratings"])
    metrics = {f"rating/{m}": float(ratings["ratings"][m]) for m in members}
    metrics.update({f"sigma/{m}": float(ratings["sigmas"][m]) for m in members})
    return metrics


def _combat(path: Path) -> Metrics:
    outcomes = read_jsonl(path / OUTCOMES)
    judgments = read_jsonl(path / JUDGMENTS)
    rated = sum(bool(o["rated"]) for o in outcomes)
    kept = sum(1 for _ in read_jsonl(path / PAIRS))
    failures = sum(j["score"] is None for j in judgments)
    return {
        "matches/total": float(len(outcomes)),
        "matches/rated": float(rated),
        "matches/unrated": float(len(outcomes) - rated),
        "pairs/kept": float(kept),
        "pairs/dropped": float(rated - kept),
        "judge/judgments": float(len(judgments)),
        "judge/failures": float(failures),
        "judge/failure_rate": failures / len(judgments) if judgments else 0.0,
    }


def _training(path: Path) -> Metrics:
    training = read_json(path / TRAINING)
    metrics: Metrics = {}
    for member, entry in (training.get("members") or {}).items():
        metrics.update(numbers(f"dpo/{member}", entry))
    metrics.update(numbers("training", {k: v for k, v in training.items() if k != "members"}))
    return metrics


def round_metrics(run_dir: Path, round_index: int, stage_seconds: Mapping[str, float] | None = None) -> Metrics:
    """Everything logged for a finished round (see the module docstring)."""
    path = round_dir(run_dir, round_index)
    metrics = _ratings(path)
    members = [name.removeprefix("rating/") for name in metrics if name.startswith("rating/")]
    strengths = bradley_terry(outcomes_of_round(run_dir, round_index), members)
    metrics.update({f"bradley_terry/{m}": strengths[m] for m in members})
    metrics.update(_combat(path))
    metrics.update(_training(path))
    metrics.update({f"time/{stage}": float(seconds) for stage, seconds in (stage_seconds or {}).items()})
    return metrics


def eval_metrics(evaluation: Mapping[str, Any]) -> dict[int, Metrics]:
    """``eval.json``'s scores by evaluated round: every member's, the best member's and the pool mean, per task."""
    by_round: dict[int, Metrics] = {}
    for row in evaluation.get("scores", []):
        if row["score"] is not None:
            by_round.setdefault(int(row["round"]), {})[f"eval/{row['task']}/{row['member']}"] = float(row["score"])
    for summary, label in (("best", "best"), ("mean", "pool_mean")):
        for round_key, tasks in evaluation.get(summary, {}).items():
            for task, cell in tasks.items():
                if cell.get("score") is not None:
                    by_round.setdefault(int(round_key), {})[f"eval/{task}/{label}"] = float(cell["score"])
    return by_round
