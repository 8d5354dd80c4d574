"""Bradley-Terry ratings of the tribe from its match outcomes, printed beside SPARTA's online reputation.

SPARTA's reputation moves pair by pair and depends on the order of the matches; Bradley-Terry fits all outcomes of
a run at once, so it is the order-free reference a reader can compare the reputation with.

Model: P(a beats b) = sigmoid(theta_a - theta_b). The strengths maximise the log-likelihood of the outcomes minus a
ridge penalty ``prior / 2 * sum(theta ** 2)`` (a Gaussian prior of variance 1/prior on each natural-log strength),
which keeps undefeated, winless and unplayed members finite and pins the mean strength at 0.
They are reported on an Elo-like scale: ``rating = 1000 + 400 * log10(e) * theta``, so the pool's mean rating is
1000 and a 400-point gap means 10:1 odds.

An outcome is ``(model_a, model_b, result)`` with ``result`` in [0, 1] the share won by model_a: 1 a win, 0 a loss,
0.5 a tie (fractional shares count as that many wins and losses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize

Outcome = tuple[str, str, float]

CENTER = 1000.0
ELO_PER_NAT = 400.0 / math.log(10.0)


def _encode(outcomes: Sequence[Outcome], members: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes as index arrays (a, b) and results, after checking each one."""
    if len(set(members)) != len(members):
        raise ValueError(f"members has duplicates: {sorted({m for m in members if list(members).count(m) > 1})}")
    index = {m: i for i, m in enumerate(members)}
    a = np.empty(len(outcomes), dtype=np.int64)
    b = np.empty(len(outcomes), dtype=np.int64)
    r = np.empty(len(outcomes), dtype=np.float64)
    for k, (ma, mb, res) in enumerate(outcomes):
        for name in (ma, mb):
            if name not in index:
                raise ValueError(f"outcome {k} ({ma!r} vs {mb!r}): {name!r} is not one of the members {list(members)}")
        if ma == mb:
            raise ValueError(f"outcome {k}: {ma!r} plays itself")
        if not 0.0 <= float(res) <= 1.0:
            raise ValueError(f"outcome {k} ({ma!r} vs {mb!r}): result {res!r} is not a share in [0, 1]")
        a[k], b[k], r[k] = index[ma], index[mb], float(res)
    return a, b, r


def _win_matrix(a: np.ndarray, b: np.ndarray, r: np.ndarray, m: int, weights: np.ndarray | None = None) -> np.ndarray:
    """W[i, j] = wins of i over j (ties and shares split), so the fit costs O(m^2) whatever the number of games."""
    w = np.ones_like(r) if weights is None else weights
    wins = np.zeros((m, m))
    np.add.at(wins, (a, b), w * r)
    np.add.at(wins, (b, a), w * (1.0 - r))
    return wins


def _fit(wins: np.ndarray, prior: float) -> np.ndarray:
    """Penalised maximum-likelihood strengths (natural-log scale, mean 0) from a win matrix."""
    m = wins.shape[0]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[:, None] - theta[None, :]
        # -log sigmoid(diff) = logaddexp(0, -diff); its derivative in diff is -(1 - sigmoid(diff))
        nll = float(np.sum(wins * np.logaddexp(0.0, -diff))) + 0.5 * prior * float(theta @ theta)
        p = 0.5 * (1.0 + np.tanh(0.5 * diff))  # sigmoid(diff), overflow free
        g = wins * (1.0 - p)  # d(-loglik)/d theta_i of i's wins over j is -g[i, j], for theta_j it is +g[i, j]
        grad = -g.sum(axis=1) + g.sum(axis=0) + prior * theta
        return nll, grad

    if m == 0 or not wins.any():
        return np.zeros(m)
    res = minimize(objective, np.zeros(m), jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-9})
    theta = res.x
    return theta - theta.mean()


def _to_elo(theta: np.ndarray) -> np.ndarray:
    return CENTER + ELO_PER_NAT * theta


def bradley_terry(outcomes: Sequence[Outcome], members: Sequence[str], prior: float = 0.01) -> dict[str, float]:
    """Bradley-Terry ratings on the Elo-like scale (pool mean 1000); members without games get 1000."""
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    a, b, r = _encode(outcomes, members)
    theta = _fit(_win_matrix(a, b, r, len(members)), prior)
    return dict(zip(members, _to_elo(theta).tolist()))


def bootstrap_intervals(
    outcomes: Sequence[Outcome],
    members: Sequence[str],
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    prior: float = 0.01,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the ratings: refit on outcomes resampled with replacement.

    Each refit is centred at 1000 like the estimate, so an interval says how sure the member's place relative to
    the pool is. With very few games a percentile interval may not contain the point estimate.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    a, b, r = _encode(outcomes, members)
    m, n = len(members), len(r)
    if n == 0:
        return {name: (CENTER, CENTER) for name in members}
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, m))
    for t in range(n_boot):
        counts = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        draws[t] = _to_elo(_fit(_win_matrix(a, b, r, m, counts), prior))
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return {name: (float(low[i]), float(high[i])) for i, name in enumerate(members)}


def record(outcomes: Sequence[Outcome], members: Sequence[str]) -> dict[str, dict[str, int]]:
    """Wins, losses and ties per member; a share above 0.5 is a win, below a loss, exactly 0.5 a tie."""
    a, b, r = _encode(outcomes, members)
    tally = {name: {"wins": 0, "losses": 0, "ties": 0} for name in members}
    for i, j, res in zip(a.tolist(), b.tolist(), r.tolist()):
        first, second = ("wins", "losses") if res > 0.5 else ("losses", "wins") if res < 0.5 else ("ties", "ties")
        tally[members[i]][first] += 1
        tally[members[j]][second] += 1
    return tally


def leaderboard_rows(
    reputation: Mapping[str, float],
    outcomes: Sequence[Outcome],
    members: Sequence[str],
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    prior: float = 0.01,
) -> list[dict[str, Any]]:
    """One row per member, best Bradley-Terry rating first (ties by name), beside its SPARTA reputation.

    Keys: rank, member, reputation, bt, bt_low, bt_high, wins, losses, ties. ``n_boot=0`` skips the
    bootstrap and leaves bt_low and bt_high None.
    """
    missing = [name for name in members if name not in reputation]
    if missing:
        raise ValueError(f"reputation has no rating for members {missing}")
    bt = bradley_terry(outcomes, members, prior)
    ci = bootstrap_intervals(outcomes, members, n_boot, seed, level, prior) if n_boot > 0 else {}
    tally = record(outcomes, members)
    order = sorted(members, key=lambda name: (-bt[name], name))
    return [
        {
            "rank": rank,
            "member": name,
            "reputation": float(reputation[name]),
            "bt": bt[name],
            "bt_low": ci[name][0] if ci else None,
            "bt_high": ci[name][1] if ci else None,
            **tally[name],
        }
        for rank, name in enumerate(order, 1)
    ]
