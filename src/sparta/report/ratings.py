"""Every member's reputation per rated round, from ``round_RRR/ratings.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sparta.config import load_config
from sparta.report.files import json_file, members_of, required
from sparta.report.leaderboard import rated_rounds
from sparta.rundir import CONFIG_YAML, RATINGS, round_dir


@dataclass
class RatingHistory:
    """``ratings[m][i]`` is member m's reputation after round ``rounds[i]``; round 0 is the initial rating."""

    rounds: list[int]
    ratings: dict[str, list[float]]
    initial: float


def rating_history(run_dir: Path) -> RatingHistory:
    members = members_of(run_dir)
    initial = load_config(run_dir / CONFIG_YAML).tournament.initial_rating
    rounds = [0]
    ratings = {member: [initial] for member in members}
    for round_index in rated_rounds(run_dir):
        path = round_dir(run_dir, round_index) / RATINGS
        after = required(json_file(path), "ratings", str(path))
        for member in members:
            ratings[member].append(float(required(after, member, f"{path}: ratings")))
        rounds.append(round_index)
    return RatingHistory(rounds, ratings, initial)
