"""Two rounds on the same items: the mean paired difference with a paired bootstrap interval, and McNemar's exact
test for 0/1 scores.

Every evaluated round answers the same held-out items, so round r is compared with the baseline round item by item.
The paired bootstrap resamples items and keeps each item's two scores together; the between-item variance both
rounds share then cancels, and the interval is the one of the difference itself (two separate intervals that
overlap say little about it). For 0/1 scores only the discordant items carry information: ``gained`` went 0 -> 1,
``lost`` went 1 -> 0. With no change each discordant item is a fair coin, so McNemar's exact p-value is the
two-sided binomial test of ``gained`` successes in ``gained + lost`` trials at 1/2 (``scipy.stats.binomtest``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sparta.evaluation.bootstrap import LEVEL, N_BOOT, Interval, bootstrap_mean


def paired_scores(before: Mapping[str, float], after: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """The two rounds' scores of the items scored in both, in ``before``'s item order."""
    items = [item for item in before if item in after]
    return [before[item] for item in items], [after[item] for item in items]


def paired_difference(
    before: Sequence[float], after: Sequence[float], seed: int, n_boot: int = N_BOOT, level: float = LEVEL
) -> Interval:
    """The mean of ``after[i] - before[i]`` and its percentile interval over ``n_boot`` resamples of the items."""
    if len(before) != len(after):
        raise ValueError(f"paired samples differ in length: {len(before)} and {len(after)}")
    return bootstrap_mean([new - old for old, new in zip(before, after)], seed, n_boot, level)


def discordant(before: Sequence[float], after: Sequence[float]) -> tuple[int, int]:
    """(gained, lost): items scored 0 then 1, and 1 then 0. Scores must be 0 or 1."""
    odd = sorted({x for x in (*before, *after) if x not in (0.0, 1.0)})
    if odd:
        raise ValueError(f"McNemar's test needs scores of 0 or 1, got {odd[:3]}")
    gained = sum(old == 0.0 and new == 1.0 for old, new in zip(before, after, strict=True))
    lost = sum(old == 1.0 and new == 0.0 for old, new in zip(before, after, strict=True))
    return gained, lost


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value; 1.0 when no item changed."""
    if gained + lost == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy.stats takes a second to import; only 0/1 tasks need it

    return float(binomtest(gained, gained + lost, 0.5).pvalue)
