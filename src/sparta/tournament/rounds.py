"""One round of the tournament once the judgments are in: online rating updates, then preference pairs.

Pure bookkeeping over records; the pipeline feeds it what the tribe produced.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sparta.config import TournamentConfig
from sparta.records import Judgment, Match, PreferencePair, Response
from sparta.tournament.aggregation import aggregate
from sparta.tournament.panels import PANELS
from sparta.tournament.reputation import ReputationState, update_pair

ScoreTable = Mapping[tuple[str, str], list[tuple[str, float | None]]]
"""(instruction id, judged model) -> [(judge, score or None)]."""


def judges_for(match: Match, members: Sequence[str], who: str) -> list[str]:
    """The judges of ``match`` under the panel named ``who`` (``tournament.judges``: others, all, external)."""
    return PANELS.get(who)(match, members)


def score_table(judgments: Iterable[Judgment]) -> dict[tuple[str, str], list[tuple[str, float | None]]]:
    table: dict[tuple[str, str], list[tuple[str, float | None]]] = defaultdict(list)
    for j in judgments:
        table[(j.instruction_id, j.model)].append((j.judge, j.score))
    return table


def match_scores(
    match: Match, table: ScoreTable, ratings: Mapping[str, float], method: str
) -> tuple[float | None, float | None]:
    iid = match.instruction.id
    return (
        aggregate(method, table.get((iid, match.model_a), []), ratings),
        aggregate(method, table.get((iid, match.model_b), []), ratings),
    )


@dataclass(frozen=True, kw_only=True)
class MatchOutcome:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MatchOutcome:
        return cls(**d)


def rate_matches(
    state: ReputationState, matches: Sequence[Match], table: ScoreTable, config: TournamentConfig
) -> list[MatchOutcome]:
    """Update ``state`` in place, match by match in index order; a match with a side no judge scored is not rated."""
    outcomes = []
    for match in sorted(matches, key=lambda m: m.index):
        score_a, score_b = match_scores(match, table, state.ratings, config.aggregation)
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


def preference_pairs(
    matches: Sequence[Match],
    responses: Mapping[tuple[str, str], Response],
    table: ScoreTable,
    ratings: Mapping[str, float],
    config: TournamentConfig,
) -> list[PreferencePair]:
    """Chosen = the higher aggregated score under the end-of-round ``ratings``; ties and small margins dropped."""
    pairs = []
    for match in sorted(matches, key=lambda m: m.index):
        s_a, s_b = match_scores(match, table, ratings, config.aggregation)
        if s_a is None or s_b is None or s_a == s_b:
            continue
        margin = abs(s_a - s_b)
        if margin < config.min_margin:
            continue
        win, lose = (match.model_a, match.model_b) if s_a > s_b else (match.model_b, match.model_a)
        iid = match.instruction.id
        pairs.append(
            PreferencePair(
                prompt=match.instruction.text,
                chosen=responses[(iid, win)].text,
                rejected=responses[(iid, lose)].text,
                chosen_model=win,
                rejected_model=lose,
                margin=margin,
                instruction_id=iid,
                domain=match.instruction.domain,
            )
        )
    return pairs
