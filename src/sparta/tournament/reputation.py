"""The reputation update (DESIGN section 1, step 6), online and pair by pair.

For combatant i against opponent o with aggregated scores s_i, s_o:

    R_i <- max(floor, R_i + kappa * (s_i - s_o) * tanh(sigma_i) * max(|Phi(z) - Phi(-z)|, eps) / scale)
    z = (R_i - R_o) / sqrt(sigma_i^2 + sigma_o^2)
    kappa = max(kappa_min, kappa0 * decay ** (updates / decay_steps))

``updates`` counts the pairs rated so far in the whole run (the authors reset it every round; see
``reset_kappa_each_round``). Order within one pair, as the authors' ``RatingSystem`` counts:

1) ``updates`` advances by one, then kappa is computed from it: the first pair of a run gets
   ``kappa0 * decay ** (1 / decay_steps)``, not kappa0 (``kappa_counter: advance_after`` computes kappa first, so
   the first pair gets kappa0: this project's former default);
2) the first combatant's rating moves;
3) the second's moves, seeing the first one's new rating in z;
4) both changes enter the histories and both sigmas move (population sd of the last ``window`` changes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sparta.config import TournamentConfig
from sparta.registry import Registry


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


Gain = Callable[[float, float], float]
"""(z, score difference) -> the outcome factor that multiplies the step."""

GAINS: Registry[Gain] = Registry("update rule")


@GAINS.register("paper")
def paper_gain(z: float, diff: float) -> float:
    """|Phi(z) - Phi(-z)|: symmetric in the two ratings, as the paper's formula is written (the default)."""
    return abs(normal_cdf(z) - normal_cdf(-z))


@GAINS.register("upset_aware")
def upset_aware_gain(z: float, diff: float) -> float:
    """2 * Phi(-z * sign(diff)): 1 between equals, up to 2 for beating a stronger opponent, to 0 for a weaker one.

    An option for the paper's prose ("more credit for beating a stronger opponent"), which its formula does not do.
    """
    if diff == 0:
        return 0.0
    return 2.0 * normal_cdf(-z * math.copysign(1.0, diff))


@dataclass
class ReputationState:
    """Everything the update needs across pairs and rounds; persisted in the run state."""

    ratings: dict[str, float]
    sigmas: dict[str, float]
    history: dict[str, list[float]]
    updates: int = 0

    @classmethod
    def initial(cls, members: Sequence[str], config: TournamentConfig) -> ReputationState:
        return cls(
            ratings={m: config.initial_rating for m in members},
            sigmas={m: config.initial_sigma for m in members},
            history={m: [] for m in members},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratings": dict(self.ratings),
            "sigmas": dict(self.sigmas),
            "history": {m: list(h) for m, h in self.history.items()},
            "updates": self.updates,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReputationState:
        return cls(
            ratings={m: float(v) for m, v in d["ratings"].items()},
            sigmas={m: float(v) for m, v in d["sigmas"].items()},
            history={m: [float(x) for x in h] for m, h in d["history"].items()},
            updates=int(d["updates"]),
        )

    def copy(self) -> ReputationState:
        return ReputationState.from_dict(self.to_dict())


def kappa(updates: int, config: TournamentConfig) -> float:
    return max(config.kappa_min, config.kappa0 * config.decay ** (updates / config.decay_steps))


_KAPPA_COUNT_OFFSET = {"advance_first": 1, "advance_after": 0}
"""What the pair's own count adds to the pairs rated before it, per ``tournament.kappa_counter``."""


def rating_step(
    r_self: float, r_opp: float, sigma_self: float, sigma_opp: float, diff: float, k: float, config: TournamentConfig
) -> float:
    """The new rating of one combatant, floored."""
    z = (r_self - r_opp) / math.sqrt(sigma_self**2 + sigma_opp**2)
    factor = max(GAINS.get(config.update_rule)(z, diff), config.eps)
    delta = k * diff * math.tanh(sigma_self) * factor / config.scale
    return max(config.rating_floor, r_self + delta)


def deviation(changes: Sequence[float], config: TournamentConfig) -> float:
    """Population sd of the last ``window`` changes, floored; the initial sigma until two changes exist."""
    recent = list(changes)[-config.window :]
    if len(recent) < 2:
        return config.initial_sigma
    return max(config.sigma_min, population_sd(recent))


def population_sd(values: Sequence[float]) -> float:
    """``statistics.pstdev`` bit for bit (the correctly rounded root of the exact population variance), 20x faster.

    Every float is a / 2**e, so with one shared exponent e the variance is exactly
    (n * sum(a^2) - sum(a)^2) / (n^2 * 4**e) in integers, where Python 3.11's pstdev sums Fractions;
    every rating update needs two of these.
    """
    ratios = [value.as_integer_ratio() for value in values]
    exponent = max(denominator.bit_length() - 1 for _, denominator in ratios)
    scaled = [numerator << (exponent - denominator.bit_length() + 1) for numerator, denominator in ratios]
    count, total = len(scaled), sum(scaled)
    return _sqrt_of_ratio(count * sum(a * a for a in scaled) - total * total, count * count << 2 * exponent)


def _sqrt_of_ratio(numerator: int, denominator: int) -> float:
    """sqrt(numerator / denominator) correctly rounded: an integer root of at least 56 bits whose last bit records
    whether anything was cut off (round to odd), then one correctly rounded int / int division."""
    shift = max(0, (113 - numerator.bit_length() + denominator.bit_length()) // 2)
    quotient, remainder = divmod(numerator << 2 * shift, denominator)
    root = math.isqrt(quotient)
    inexact = remainder != 0 or root * root != quotient
    return (root | inexact) / (1 << shift)


def update_pair(
    state: ReputationState, a: str, b: str, score_a: float, score_b: float, config: TournamentConfig
) -> tuple[float, float]:
    """Apply one pair's update in place and return the two rating changes (after flooring)."""
    k = kappa(state.updates + _KAPPA_COUNT_OFFSET[config.kappa_counter], config)
    state.updates += 1
    old_a, old_b = state.ratings[a], state.ratings[b]
    sig_a, sig_b = state.sigmas[a], state.sigmas[b]
    new_a = rating_step(old_a, old_b, sig_a, sig_b, score_a - score_b, k, config)
    new_b = rating_step(old_b, new_a, sig_b, sig_a, score_b - score_a, k, config)
    state.ratings[a], state.ratings[b] = new_a, new_b
    changes = (new_a - old_a, new_b - old_b)
    for member, change in ((a, changes[0]), (b, changes[1])):
        state.history[member].append(change)
        del state.history[member][: -config.window]
        state.sigmas[member] = deviation(state.history[member], config)
    return changes
