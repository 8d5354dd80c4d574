"""How often judges prefer a pair's ``first`` side: accuracy on decided pairs, a bias rate on control pairs.

For one judge and one pair the preference is 1 when the first side scores strictly higher, 0 when lower and 1/2 for
a tie or an unreadable judgment (a judge that cannot tell is a coin), as in the probe check. Two rates per kind:

- ``rate``  the mean over pairs of the mean over the pair's judges: what one judgment is worth;
- ``panel`` the mean over pairs of the preference between the two sides' mean readable scores (uniform
            aggregation): what a SPARTA match would decide with these judges.

0.5 is chance (decided) or no bias (controls). Intervals are percentile bootstraps over pairs (seeded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from sparta.evaluation.bootstrap import bootstrap_mean
from sparta.judge_validity.pairs import GoldPair

Scores = tuple["float | None", "float | None"]
"""One judge's scores of a pair: (first side, second side); None where the judgment could not be read."""


def preference(first: float | None, second: float | None) -> float:
    """1 if ``first`` scored strictly higher, 0 if lower, 1/2 for a tie or an unreadable score."""
    if first is None or second is None or first == second:
        return 0.5
    return 1.0 if first > second else 0.0


def _mean_readable(values: Sequence[float | None]) -> float | None:
    readable = [v for v in values if v is not None]
    return fmean(readable) if readable else None


@dataclass(frozen=True, kw_only=True)
class PairVerdict:
    """A pair and every judge's scores of its two sides."""

    pair: GoldPair
    scores: Mapping[str, Scores]

    def per_judgment(self) -> float:
        """The mean preference over the pair's judges."""
        return fmean(preference(first, second) for first, second in self.scores.values())

    def panel(self) -> float:
        """The preference between the mean readable scores of the two sides."""
        firsts = _mean_readable([first for first, _ in self.scores.values()])
        seconds = _mean_readable([second for _, second in self.scores.values()])
        return preference(firsts, seconds)


def summarise_kind(verdicts: Sequence[PairVerdict], seed: int) -> dict[str, Any]:
    """Rates with intervals over one kind's pairs, and what they rest on (pairs, items, judgments, failures, ties)."""
    verdicts = [v for v in verdicts if v.scores]
    judged = [scores for v in verdicts for scores in v.scores.values()]
    return {
        "pairs": len(verdicts),
        "items": len({v.pair.item_id for v in verdicts}),
        "same_source": sum(v.pair.same_source for v in verdicts),
        "rate": bootstrap_mean([v.per_judgment() for v in verdicts], seed).to_dict(),
        "panel": bootstrap_mean([v.panel() for v in verdicts], seed).to_dict(),
        "judgments": 2 * len(judged),
        "failures": sum((first is None) + (second is None) for first, second in judged),
        "ties": sum(first is not None and first == second for first, second in judged),
    }
