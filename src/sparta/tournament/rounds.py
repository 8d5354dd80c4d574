"""One round of the tournament once the judgments are in: online rating updates, then preference pairs.

Pure bookkeeping over records; the pipeline feeds it what the tribe produced. Both steps fit the configured
aggregation rule to the whole round first (a round rule learns the judges' reliabilities from it; the paper's rule
ignores it), then score every match with the ratings of the moment (updates) or of the round's end (pairs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sparta.config import TournamentConfig
from sparta.records import FlatRecord, Judgment, Match, PreferencePair, Response
from sparta.tournament.aggregation import build_aggregate
from sparta.tournament.panels import PANELS
from sparta.tournament.reputation import ReputationState, update_pair

ScoreTable = Mapping[tuple[str, str], list[tuple[str, float | None]]]
"""(instruction id, judged model) -> [(judge, score or None)]."""

ResponseAggregate = Callable[[Iterable[tuple[str, float | None]], Mapping[str, float]], "float | None"]
"""(one response's judgments, ratings) -> its aggregated score: the configured rule, fitted to the round."""


def judges_for(match: Match, members: Sequence[str], who: str) -> list[str]:
    """The judges of ``match`` under the panel named ``who`` (``tournament.judges``: others, all, external)."""
    return PANELS.get(who)(match, members)


def score_table(judgments: Iterable[Judgment]) -> dict[tuple[str, str], list[tuple[str, float | None]]]:
    table: dict[tuple[str, str], list[tuple[str, float | None]]] = defaultdict(list)
    for j in judgments:
        table[(j.instruction_id, j.model)].append((j.judge, j.score))
    return table


def round_scores(matches: Sequence[Match], table: ScoreTable) -> list[dict[str, tuple[float, float]]]:
    """Per match in index order: judge -> (score of a, score of b) for the judges who scored both answers."""
    rows = []
    for match in sorted(matches, key=lambda m: m.index):
        iid = match.instruction.id
        side_a = {judge: score for judge, score in table.get((iid, match.model_a), []) if score is not None}
        side_b = {judge: score for judge, score in table.get((iid, match.model_b), []) if score is not None}
        rows.append({judge: (side_a[judge], side_b[judge]) for judge in sorted(side_a.keys() & side_b.keys())})
    return rows


def match_scores(
    match: Match, table: ScoreTable, ratings: Mapping[str, float], aggregate: ResponseAggregate
) -> tuple[float | None, float | None]:
    iid = match.instruction.id
    return (
        aggregate(table.get((iid, match.model_a), []), ratings),
        aggregate(table.get((iid, match.model_b), []), ratings),
    )


@dataclass(frozen=True, kw_only=True)
class MatchOutcome(FlatRecord):
    """What one match did to the ratings; scores are aggregated with the judges' ratings at that moment."""

    index: int
    instruction_id: str
    model_a: str
    model_b: str
    score_a: float | None
    score_b: float | None
    change_a: float = 0.0
    change_b: float = 0.0
    rated: bool = False


def rate_matches(
    state: ReputationState, matches: Sequence[Match], table: ScoreTable, config: TournamentConfig
) -> list[MatchOutcome]:
    """Update ``state`` in place, match by match in index order; a match with a side no judge scored is not rated."""
    aggregate = build_aggregate(config, round_scores(matches, table))
    outcomes = []
    for match in sorted(matches, key=lambda m: m.index):
        score_a, score_b = match_scores(match, table, state.ratings, aggregate)
        rated = score_a is not None and score_b is not None
        change_a, change_b = (
            update_pair(state, match.model_a, match.model_b, score_a, score_b, config) if rated else (0.0, 0.0)
        )
        outcomes.append(
            MatchOutcome(
                index=match.index,
                instruction_id=match.instruction.id,
                model_a=match.model_a,
                model_b=match.model_b,
                score_a=score_a,
                score_b=score_b,
                change_a=change_a,
                change_b=change_b,
                rated=rated,
            )
        )
    return outcomes


@dataclass(frozen=True)
class PairSelection:
    """The round's preference pairs and what ``tournament.truncated`` did to pairs with an answer cut short."""

    pairs: list[PreferencePair]
    dropped_truncated: int = 0
    kept_truncated: int = 0


def select_pairs(
    matches: Sequence[Match],
    responses: Mapping[tuple[str, str], Response],
    table: ScoreTable,
    ratings: Mapping[str, float],
    config: TournamentConfig,
) -> PairSelection:
    """Chosen = the higher aggregated score under the end-of-round ``ratings``; ties and small margins dropped.

    A pair with an answer cut by ``max_new_tokens`` (``Response.truncated``) is dropped and counted
    (``truncated: drop``), or kept, counted and marked so that training scores the cut side as a prefix (``keep``).
    """
    aggregate = build_aggregate(config, round_scores(matches, table))
    pairs, dropped, kept = [], 0, 0
    for match in sorted(matches, key=lambda m: m.index):
        score_a, score_b = match_scores(match, table, ratings, aggregate)
        if score_a is None or score_b is None or score_a == score_b or abs(score_a - score_b) < config.min_margin:
            continue
        winner, loser = (match.model_a, match.model_b) if score_a > score_b else (match.model_b, match.model_a)
        chosen, rejected = responses[(match.instruction.id, winner)], responses[(match.instruction.id, loser)]
        if chosen.truncated or rejected.truncated:
            if config.truncated == "drop":
                dropped += 1
                continue
            kept += 1
        pairs.append(
            PreferencePair(
                prompt=match.instruction.text,
                chosen=chosen.text,
                rejected=rejected.text,
                chosen_model=winner,
                rejected_model=loser,
                margin=abs(score_a - score_b),
                instruction_id=match.instruction.id,
                domain=match.instruction.domain,
                chosen_truncated=chosen.truncated,
                rejected_truncated=rejected.truncated,
            )
        )
    return PairSelection(pairs, dropped_truncated=dropped, kept_truncated=kept)


def preference_pairs(
    matches: Sequence[Match],
    responses: Mapping[tuple[str, str], Response],
    table: ScoreTable,
    ratings: Mapping[str, float],
    config: TournamentConfig,
) -> list[PreferencePair]:
    """The pairs of :func:`select_pairs`, without its counts."""
    return select_pairs(matches, responses, table, ratings, config).pairs
