"""A round's judgments as one matrix: every judge's verdict on every match it scored on both sides.

Both round-level aggregation rules (peer_rank, dawid_skene) learn from the same thing, the sign and size of
``d_jm = s_jm(a) - s_jm(b)``: how much judge j preferred answer a to answer b in match m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparta.tournament.aggregation import RoundScores


@dataclass(frozen=True, kw_only=True)
class VerdictMatrix:
    """``differences[m, j]`` = d_jm where ``present[m, j]``, else 0; judges in name order (so results never depend
    on the order judgments arrived in)."""

    judges: list[str]
    differences: np.ndarray  # (matches, judges) float64
    present: np.ndarray  # (matches, judges) bool

    @property
    def votes(self) -> np.ndarray:
        """sign(d_jm): +1 for a, -1 for b, 0 for a tie or no verdict."""
        return np.sign(self.differences)


def verdict_matrix(round_scores: RoundScores) -> VerdictMatrix:
    judges = sorted({judge for match in round_scores for judge in match})
    column = {judge: j for j, judge in enumerate(judges)}
    differences = np.zeros((len(round_scores), len(judges)))
    present = np.zeros((len(round_scores), len(judges)), dtype=bool)
    for m, match in enumerate(round_scores):
        for judge, (score_a, score_b) in match.items():
            differences[m, column[judge]] = score_a - score_b
            present[m, column[judge]] = True
    return VerdictMatrix(judges=judges, differences=differences, present=present)
