"""Dawid-Skene truth inference over the judges' pairwise verdicts: a one-coin model fitted by EM.

Each match m has a hidden truth, "a is better" or "b is better", equally likely beforehand (which answer is a says
nothing about quality). Judge j's verdict v_jm = sign(s_jm(a) - s_jm(b)) (a tie abstains) is right with
probability p_j on either side ("one coin"), independently of the other judges given the truth (Dawid and Skene
1979, with one accuracy per judge instead of a confusion matrix). EM from the majority vote:

    T_m = n_a / (n_a + n_b)                                                  start (1/2 without votes)
    M: p_j = (1 + sum_m [v_jm = +1] T_m + [v_jm = -1] (1 - T_m)) / (2 + n_j)   a Beta(1, 1) prior, n_j verdicts
    E: T_m = P(a better | verdicts) = sigmoid(sum_j v_jm * logit(p_j))

until no p_j moves by more than ``TOLERANCE`` (or ``iterations`` M-steps). A judge's weight is its log-odds of
being right, w_j = logit(p_j): 0 for a coin, negative for a judge that is reliably wrong, whose scores the
aggregation then counts mirrored. The scores are then combined with these weights (aggregation.py), so the size of a
judge's preference counts as in the paper's rule; with pure votes that would be exactly the model's own decision.
crowd-kit implements the same model but requires pandas, scikit-learn and more; this one needs numpy only.
"""

from __future__ import annotations

import numpy as np

from sparta.tournament.aggregation import RoundScores
from sparta.tournament.verdicts import verdict_matrix

TOLERANCE = 1e-9


def majority(votes: np.ndarray) -> np.ndarray:
    """P(a better) as the share of votes for a; 1/2 for a match without votes."""
    for_a, for_b = (votes > 0).sum(axis=1), (votes < 0).sum(axis=1)
    cast = for_a + for_b
    return np.where(cast > 0, for_a / np.maximum(cast, 1), 0.5)


def accuracies(votes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """M-step: each judge's smoothed probability of voting for the side that is (probably) better."""
    right = np.where(votes > 0, truth[:, None], np.where(votes < 0, 1.0 - truth[:, None], 0.0))
    return (1.0 + right.sum(axis=0)) / (2.0 + (votes != 0).sum(axis=0))


def posterior(votes: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """E-step: P(a better | the verdicts) for every match."""
    log_odds = (votes * np.log(accuracy / (1.0 - accuracy))).sum(axis=1)
    return 1.0 / (1.0 + np.exp(-log_odds))


def dawid_skene(votes: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """(judge accuracies p, P(a better) per match) for a (matches, judges) matrix of votes in {-1, 0, +1}."""
    truth = majority(votes)
    accuracy = accuracies(votes, truth)
    for _ in range(iterations - 1):
        truth = posterior(votes, accuracy)
        updated = accuracies(votes, truth)
        moved = float(np.max(np.abs(updated - accuracy), initial=0.0))
        accuracy = updated
        if moved <= TOLERANCE:
            break
    return accuracy, posterior(votes, accuracy)


def dawid_skene_weights(round_scores: RoundScores, iterations: int) -> dict[str, float]:
    """Each judge's weight logit(p_j), for every judge with at least one verdict in the round."""
    verdicts = verdict_matrix(round_scores)
    accuracy, _ = dawid_skene(verdicts.votes, iterations)
    return dict(zip(verdicts.judges, np.log(accuracy / (1.0 - accuracy)).tolist()))
