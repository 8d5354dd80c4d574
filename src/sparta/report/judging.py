"""How each judge voted: agreement with the aggregated scores its vote was part of, and unreadable judgments."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparta.report.files import members_of, required, round_rows
from sparta.report.leaderboard import rated_rounds
from sparta.rundir import JUDGMENTS, OUTCOMES, round_dir


# -- agreement with the aggregate -----------------------------------------------------------------------
@dataclass
class JudgeAgreement:
    """How one judge's own scores compare with the aggregated scores its vote was part of.

    ``matches``: matches where it scored both sides and both sides have an aggregate; ``agree``: those where its
    preference (higher score, or a tie) is the aggregate's; ``mad``: mean |own score - aggregate| over ``scores``
    responses it scored.
    """

    judge: str
    matches: int = 0
    agree: int = 0
    ties: int = 0
    scores: int = 0
    abs_dev: float = 0.0

    @property
    def agreement(self) -> float | None:
        return self.agree / self.matches if self.matches else None

    @property
    def mad(self) -> float | None:
        return self.abs_dev / self.scores if self.scores else None

    def add(self, part: JudgeAgreement) -> None:
        self.matches += part.matches
        self.agree += part.agree
        self.ties += part.ties
        self.scores += part.scores
        self.abs_dev += part.abs_dev


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _scores_by_judge(judgments: Sequence[dict[str, Any]], where: str) -> dict[tuple[str, str], dict[str, float]]:
    """(instruction id, model judged) -> {judge: score} for the judgments that could be read."""
    table: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for number, row in enumerate(judgments, 1):
        at = f"{where} record {number}"
        score = required(row, "score", at)
        if score is not None:
            key = (required(row, "instruction_id", at), required(row, "model", at))
            table[key][required(row, "judge", at)] = float(score)
    return table


def agreement_from_rows(
    judgments: Sequence[dict[str, Any]], outcomes: Sequence[dict[str, Any]], where: str = "round"
) -> dict[str, JudgeAgreement]:
    """Per judge, over one round's judgments.jsonl and outcomes.jsonl rows."""
    table = _scores_by_judge(judgments, f"{where}/{JUDGMENTS}")
    result: dict[str, JudgeAgreement] = {}
    for number, outcome in enumerate(outcomes, 1):
        at = f"{where}/{OUTCOMES} record {number}"
        item = required(outcome, "instruction_id", at)
        model_a, model_b = required(outcome, "model_a", at), required(outcome, "model_b", at)
        aggregate_a, aggregate_b = required(outcome, "score_a", at), required(outcome, "score_b", at)
        if aggregate_a is None or aggregate_b is None:
            continue
        own_a, own_b = table.get((item, model_a), {}), table.get((item, model_b), {})
        for judge in own_a.keys() | own_b.keys():
            stats = result.setdefault(judge, JudgeAgreement(judge))
            for own, aggregate in ((own_a, aggregate_a), (own_b, aggregate_b)):
                if judge in own:
                    stats.scores += 1
                    stats.abs_dev += abs(own[judge] - aggregate)
            if judge in own_a and judge in own_b:
                mine = _sign(own_a[judge] - own_b[judge])
                stats.matches += 1
                stats.agree += mine == _sign(aggregate_a - aggregate_b)
                stats.ties += mine == 0
    return result


def judge_agreement(run_dir: Path) -> list[JudgeAgreement]:
    """One row per judge over all rated rounds: pool members first (in pool order), then any other judge."""
    totals: dict[str, JudgeAgreement] = {member: JudgeAgreement(member) for member in members_of(run_dir)}
    for round_index in rated_rounds(run_dir):
        folder = round_dir(run_dir, round_index)
        part = agreement_from_rows(round_rows(folder / JUDGMENTS), round_rows(folder / OUTCOMES), folder.name)
        for judge, stats in sorted(part.items()):
            totals.setdefault(judge, JudgeAgreement(judge)).add(stats)
    return list(totals.values())


# -- failures -------------------------------------------------------------------------------------------
@dataclass
class JudgeFailures:
    """A judge's unreadable judgments: counted and excluded from aggregation, with a few raw texts to look at."""

    judge: str
    judgments: int = 0
    failures: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.failures / self.judgments if self.judgments else None


def failures_from_rows(
    judgments: Sequence[dict[str, Any]], members: Sequence[str], examples: int = 3, where: str = JUDGMENTS
) -> list[JudgeFailures]:
    """Per judge: counts, reasons, and up to ``examples`` distinct raw texts of failed judgments."""
    result = {member: JudgeFailures(member) for member in members}
    for number, row in enumerate(judgments, 1):
        at = f"{where} record {number}"
        judge = required(row, "judge", at)
        stats = result.setdefault(judge, JudgeFailures(judge))
        stats.judgments += 1
        if required(row, "score", at) is not None:
            continue
        stats.failures += 1
        stats.reasons[str(row.get("failure") or "no reason given")] += 1
        raw = row.get("raw")
        if raw is not None and len(stats.examples) < examples and str(raw) not in stats.examples:
            stats.examples.append(str(raw))
    return list(result.values())


def judge_failures(run_dir: Path, examples: int = 3) -> list[JudgeFailures]:
    judgments: list[dict[str, Any]] = []
    for round_index in rated_rounds(run_dir):
        judgments.extend(round_rows(round_dir(run_dir, round_index) / JUDGMENTS))
    return failures_from_rows(judgments, members_of(run_dir), examples, JUDGMENTS)
