"""Who beat whom: rated matches won and played by every pair of members, over every rated round."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sparta.report.files import members_of
from sparta.report.leaderboard import Outcome, outcomes_of_round, rated_rounds


@dataclass
class WinMatrix:
    """``wins[i][j]``: rated matches row i won against column j (a tie counts half); ``games[i][j]``: matches played."""

    members: list[str]
    wins: list[list[float]]
    games: list[list[int]]

    def share(self, i: int, j: int) -> float | None:
        return self.wins[i][j] / self.games[i][j] if self.games[i][j] else None


def win_matrix_from_outcomes(outcomes: Sequence[Outcome], members: Sequence[str]) -> WinMatrix:
    index = {member: i for i, member in enumerate(members)}
    size = len(members)
    wins = [[0.0] * size for _ in range(size)]
    games = [[0] * size for _ in range(size)]
    for model_a, model_b, result in outcomes:
        i, j = index[model_a], index[model_b]
        wins[i][j] += result
        wins[j][i] += 1.0 - result
        games[i][j] += 1
        games[j][i] += 1
    return WinMatrix(list(members), wins, games)


def win_matrix(run_dir: Path) -> WinMatrix:
    """Over every rated match of every rated round."""
    outcomes = [o for round_index in rated_rounds(run_dir) for o in outcomes_of_round(run_dir, round_index)]
    return win_matrix_from_outcomes(outcomes, members_of(run_dir))
