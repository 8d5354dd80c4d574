"""Mean scores with percentile-bootstrap confidence intervals over items.

Resampling is seeded, so the same scores always give the same interval; an empty sample has no mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_BOOT = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` items and its bootstrap interval; all None when ``n`` is 0."""

    score: float | None
    low: float | None
    high: float | None
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"score": self.score, "low": self.low, "high": self.high, "n": self.n}


def bootstrap_mean(values: Sequence[float], seed: int, n_boot: int = N_BOOT, level: float = LEVEL) -> Interval:
    """The mean of ``values`` and the central ``level`` percentile interval of ``n_boot`` resampled means."""
    sample = np.asarray(values, dtype=np.float64)
    if sample.size == 0:
        return Interval(None, None, None, 0)
    rng = np.random.default_rng(seed)
    means = sample[rng.integers(0, sample.size, size=(n_boot, sample.size))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(sample.mean()), float(low), float(high), int(sample.size))
