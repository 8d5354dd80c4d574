"""Judge reliability from agreement with the others' consensus, iterated (in the spirit of PeerRank, Walsh 2014).

PeerRank lets the graders' own grades weight their grading and iterates to a fixed point. Here a judge's weight is
how much more often than a coin it agrees with the other judges of the same matches, weighted by their weights:

    d_jm = s_jm(a) - s_jm(b)                        judge j's verdict on match m (a over b when positive)
    c_-jm = sum_{k != j} w_k d_km                   the consensus of the match's other judges
    agree_jm = 1 if d_jm c_-jm > 0, 0 if < 0, 1/2 if either is 0
    w_j <- max(2 * mean_m agree_jm - 1, FLOOR)      1: always with the others; FLOOR: a coin or worse

from w = 1, until no weight moves by more than ``TOLERANCE`` (or ``iterations`` updates). Leaving judge j out of
its own consensus keeps a judge from vouching for itself. The weights are never negative: a judge that disagrees
more often than a coin is left out, not mirrored, because a consensus that is itself wrong would otherwise turn the
honest judges around (dawid_skene takes that risk, this rule does not).
"""

from __future__ import annotations

import numpy as np

from sparta.tournament.aggregation import RoundScores
from sparta.tournament.verdicts import VerdictMatrix, verdict_matrix

FLOOR = 0.01
"""The weight of a judge that agrees with the others no more than a coin: almost nothing, but a response whose
judges all look like that still gets their (weighted) mean."""

TOLERANCE = 1e-9


def agreement(verdicts: VerdictMatrix, weights: np.ndarray) -> np.ndarray:
    """Each judge's mean agreement with the leave-one-out consensus (1/2 for a judge with no verdict)."""
    weighted = verdicts.differences * weights
    others = weighted.sum(axis=1, keepdims=True) - weighted
    agree = np.where(verdicts.present, 0.5 * (1.0 + np.sign(verdicts.differences) * np.sign(others)), 0.0)
    counts = verdicts.present.sum(axis=0)
    return np.where(counts > 0, agree.sum(axis=0) / np.maximum(counts, 1), 0.5)


def peer_rank_weights(round_scores: RoundScores, iterations: int) -> dict[str, float]:
    """Each judge's weight in [FLOOR, 1], for every judge with at least one verdict in the round."""
    verdicts = verdict_matrix(round_scores)
    weights = np.ones(len(verdicts.judges))
    for _ in range(iterations):
        updated = np.maximum(2.0 * agreement(verdicts, weights) - 1.0, FLOOR)
        moved = float(np.max(np.abs(updated - weights), initial=0.0))
        weights = updated
        if moved <= TOLERANCE:
            break
    return dict(zip(verdicts.judges, weights.tolist()))
