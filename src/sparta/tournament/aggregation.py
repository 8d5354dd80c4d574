"""From many judges' scores of one response to one number (DESIGN section 1, step 5)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from sparta.registry import Registry

Aggregator = Callable[[Iterable[tuple[str, float]], Mapping[str, float]], "float | None"]
AGGREGATORS: Registry[Aggregator] = Registry("aggregation")


@AGGREGATORS.register("reputation")
def reputation_weighted(scores: Iterable[tuple[str, float]], ratings: Mapping[str, float]) -> float | None:
    """S = sum_j R_j s_j / sum_j R_j over the judges whose score could be read; None when there is none."""
    num = den = 0.0
    for judge, score in scores:
        w = ratings[judge]
        num += w * score
        den += w
    return num / den if den > 0 else None


@AGGREGATORS.register("uniform")
def uniform(scores: Iterable[tuple[str, float]], ratings: Mapping[str, float]) -> float | None:
    """The plain mean: the paper's ablation without reputation weighting."""
    values = [score for _, score in scores]
    return sum(values) / len(values) if values else None


def aggregate(method: str, scores: Iterable[tuple[str, float | None]], ratings: Mapping[str, float]) -> float | None:
    """Aggregate with the named method; judgments without a score (failed parses) are excluded, never defaulted."""
    valid = [(j, s) for j, s in scores if s is not None]
    return AGGREGATORS.get(method)(valid, ratings)
