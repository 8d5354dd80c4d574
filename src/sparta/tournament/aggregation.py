"""From many judges' scores of one response to one number (DESIGN section 1, step 5), by a rule chosen by name.

A rule is registered as a factory ``make(round_scores, config) -> Aggregate``: ``round_scores`` holds every match of
the round with each judge's readable scores of its two answers, which a rule may learn from; the ``Aggregate`` it
returns then scores one response from its judges' readable ``(judge, score)`` pairs and the ratings of the moment
(the round loop passes the ratings as they move pair by pair, and the end-of-round ratings for the pairs).

Online rules weight each judge by its rating and ignore the rest of the round:

    reputation   S = sum_j R_j s_j / sum_j R_j                          the paper's rule (the default)
    uniform      S = mean_j s_j                                         the paper's ablation
    softmax      S = sum_j w_j s_j / sum_j w_j,  w_j = exp((R_j - max_k R_k) / T)

``softmax`` lets reputation matter while ratings are still close (the authors' update moves a rating by about
0.002 x the score gap per match, so R_j / sum R stays near uniform for a long time): a judge rated T points above
another has e times its weight. Round rules first estimate each judge's reliability from all of the round's
judgments, then weight by it, ignoring the ratings:

    peer_rank    agreement with the leave-one-out consensus, iterated   (tournament/peer_rank.py)
    dawid_skene  EM over the judges' pairwise verdicts                  (tournament/dawid_skene.py)

Weights learned by a round rule may be negative (a judge that is reliably wrong); those rules score
``S = c + sum_j w_j (s_j - c) / sum_j |w_j|`` with c = 5.5 the middle of the 1-10 scale, which is the weighted mean
when no weight is negative and counts a negative-weight judge's score mirrored (11 - s). The new rules sum with
``math.fsum``, so their result does not depend on the order of the judges; ``reputation`` and ``uniform`` keep the
plain sums of earlier releases bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from sparta.registry import Registry

if TYPE_CHECKING:
    from sparta.config import TournamentConfig

JudgeScores = Sequence[tuple[str, float]]
"""One response's readable scores: (judge, score) pairs."""

Aggregate = Callable[[JudgeScores, Mapping[str, float]], "float | None"]
"""(readable scores of one response, ratings of the moment) -> its score; None when no judge could score it."""

RoundScores = Sequence[Mapping[str, tuple[float, float]]]
"""Per match of the round, in index order: judge -> (its score of answer a, its score of answer b), both readable."""

AggregatorFactory = Callable[[RoundScores, "TournamentConfig"], Aggregate]

AGGREGATORS: Registry[AggregatorFactory] = Registry("aggregation")

SCALE_MIDDLE = 5.5
"""The middle of the judges' 1-10 scale, around which a negative weight mirrors a score."""


def reputation_weighted(scores: Iterable[tuple[str, float]], ratings: Mapping[str, float]) -> float | None:
    """S = sum_j R_j s_j / sum_j R_j over the judges whose score could be read; None when there is none."""
    num = den = 0.0
    for judge, score in scores:
        w = ratings[judge]
        num += w * score
        den += w
    return num / den if den > 0 else None


def uniform(scores: Iterable[tuple[str, float]], ratings: Mapping[str, float]) -> float | None:
    """The plain mean: the paper's ablation without reputation weighting."""
    values = [score for _, score in scores]
    return sum(values) / len(values) if values else None


def weighted_mean(scores: JudgeScores, weights: Mapping[str, float], missing: float) -> float | None:
    """S = c + sum_j w_j (s_j - c) / sum_j |w_j| (c the scale's middle), exactly summed; ``missing`` weighs a judge
    without a weight; the plain mean when every weight is 0; None without scores."""
    if not scores:
        return None
    pairs = [(weights.get(judge, missing), score) for judge, score in scores]
    total = math.fsum(abs(weight) for weight, _ in pairs)
    if total == 0:
        return math.fsum(score for _, score in scores) / len(scores)
    return SCALE_MIDDLE + math.fsum(weight * (score - SCALE_MIDDLE) for weight, score in pairs) / total


def softmax_weights(judges: Iterable[str], ratings: Mapping[str, float], temperature: float) -> dict[str, float]:
    """w_j = exp((R_j - max_k R_k) / T) over the given judges: the largest weight is 1."""
    chosen = {judge: ratings[judge] for judge in judges}
    top = max(chosen.values(), default=0.0)
    return {judge: math.exp((rating - top) / temperature) for judge, rating in chosen.items()}


@AGGREGATORS.register("reputation")
def make_reputation(round_scores: RoundScores, config: TournamentConfig) -> Aggregate:
    return reputation_weighted


@AGGREGATORS.register("uniform")
def make_uniform(round_scores: RoundScores, config: TournamentConfig) -> Aggregate:
    return uniform


@AGGREGATORS.register("softmax")
def make_softmax(round_scores: RoundScores, config: TournamentConfig) -> Aggregate:
    temperature = config.aggregation_temperature

    def aggregate(scores: JudgeScores, ratings: Mapping[str, float]) -> float | None:
        return weighted_mean(scores, softmax_weights((judge for judge, _ in scores), ratings, temperature), 0.0)

    return aggregate


def _weights_rule(weights: Mapping[str, float], missing: float) -> Aggregate:
    def aggregate(scores: JudgeScores, ratings: Mapping[str, float]) -> float | None:
        return weighted_mean(scores, weights, missing)

    return aggregate


@AGGREGATORS.register("peer_rank")
def make_peer_rank(round_scores: RoundScores, config: TournamentConfig) -> Aggregate:
    from sparta.tournament.peer_rank import FLOOR, peer_rank_weights

    return _weights_rule(peer_rank_weights(round_scores, config.aggregation_iterations), FLOOR)


@AGGREGATORS.register("dawid_skene")
def make_dawid_skene(round_scores: RoundScores, config: TournamentConfig) -> Aggregate:
    from sparta.tournament.dawid_skene import dawid_skene_weights

    return _weights_rule(dawid_skene_weights(round_scores, config.aggregation_iterations), 0.0)


def build_aggregate(
    config: TournamentConfig, round_scores: RoundScores = ()
) -> Callable[[Iterable[tuple[str, float | None]], Mapping[str, float]], float | None]:
    """The configured rule, fitted to the round; judgments without a score (failed parses) are excluded, never
    defaulted."""
    rule = AGGREGATORS.get(config.aggregation)(round_scores, config)

    def aggregate(scores: Iterable[tuple[str, float | None]], ratings: Mapping[str, float]) -> float | None:
        return rule([(judge, score) for judge, score in scores if score is not None], ratings)

    return aggregate
