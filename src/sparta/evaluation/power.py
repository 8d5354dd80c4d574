"""The power of the paired test ``sparta eval`` runs on 0/1 scores (McNemar's exact test), computed exactly.

Two evaluations of N items (the best member before and after, or two members) disagree in correctness on a share d of
the items (the *discordance*): a share b went 0 -> 1 (gained), c = d - b went 1 -> 0 (lost). The accuracy difference
is delta = b - c. The number of discordant items is D ~ Binomial(N, d); given D, the gained ones are
G ~ Binomial(D, (d + delta) / (2d)). McNemar's exact test rejects "no change" at level alpha when the two-sided
binomial p-value of G in D trials at 1/2 is at most alpha, i.e. when G <= k(D) or G >= D - k(D), with k(D) the
largest k with 2 * P(Bin(D, 1/2) <= k) <= alpha. Hence

    power(N, d, delta) = sum_D P(D) * [P(G <= k(D)) + P(G >= D - k(D))]

with no normal approximation. ``detectable_difference`` is the smallest delta whose power reaches the target: the
effect an experiment of N items can see. Written before an experiment is run, it says how large N must be.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from scipy.stats import binom


@cache
def _bounds(max_discordant: int, alpha: float) -> tuple[int, ...]:
    bounds = [-1]
    for discordant in range(1, max_discordant + 1):
        k = np.arange(discordant + 1)
        low = k[2 * binom.cdf(k, discordant, 0.5) <= alpha]
        bounds.append(int(low.max()) if low.size else -1)
    return tuple(bounds)


def rejection_bounds(max_discordant: int, alpha: float) -> np.ndarray:
    """k(D) for D = 0..max_discordant: the largest gained count the test rejects in the low tail; -1 for none."""
    return np.array(_bounds(max_discordant, alpha), dtype=np.int64)


def mcnemar_power(n_items: int, discordance: float, difference: float, alpha: float = 0.05) -> float:
    """The probability that McNemar's exact test rejects at ``alpha`` (either direction) when the true accuracy
    difference is ``difference`` and the share of discordant items is ``discordance``."""
    if not 0 <= abs(difference) <= discordance <= 1:
        raise ValueError(f"need |difference| <= discordance <= 1, got {difference} and {discordance}")
    if discordance == 0:
        return 0.0
    discordant = np.arange(n_items + 1)
    bounds = rejection_bounds(n_items, alpha)
    gain = (discordance + difference) / (2 * discordance)
    low_tail = np.where(bounds >= 0, binom.cdf(bounds, discordant, gain), 0.0)
    high_tail = np.where(bounds >= 0, binom.sf(discordant - bounds - 1, discordant, gain), 0.0)
    return float(np.sum(binom.pmf(discordant, n_items, discordance) * (low_tail + high_tail)))


def detectable_difference(
    n_items: int, discordance: float, alpha: float = 0.05, power: float = 0.8, step: float = 0.001
) -> float | None:
    """The smallest accuracy difference (a multiple of ``step``) detected with probability ``power``; None when even
    every discordant item going one way (difference = discordance) is not enough."""
    grid = np.arange(step, discordance + step / 2, step)
    if not grid.size or mcnemar_power(n_items, discordance, min(grid[-1], discordance), alpha) < power:
        return None
    low, high = 0, len(grid) - 1  # power grows with the difference: bisect for the first grid point that reaches it
    while low < high:
        middle = (low + high) // 2
        if mcnemar_power(n_items, discordance, float(grid[middle]), alpha) >= power:
            high = middle
        else:
            low = middle + 1
    return float(round(grid[low], 6))


def discordance_rate(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> float:
    """The share of items that one evaluation got right and the other wrong."""
    if len(correct_a) != len(correct_b) or not correct_a:
        raise ValueError(f"need two non-empty evaluations of the same items, got {len(correct_a)} and {len(correct_b)}")
    return sum(a != b for a, b in zip(correct_a, correct_b, strict=True)) / len(correct_a)
