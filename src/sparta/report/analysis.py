"""What the HTML report shows, read out of a run directory as plain data (no plotting, no HTML).

Every function reads only the files a round writes (README, "A run directory"), so a report can be made of any
run, finished or not, on any machine. Rounds are those whose ratings stage finished (``rated_rounds``).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparta.config import load_config
from sparta.errors import SpartaError
from sparta.pipeline.state import RunState
from sparta.report.leaderboard import Outcome, outcomes_of_round, rated_rounds
from sparta.rundir import read_json, read_jsonl, round_dir


class ReportError(SpartaError, ValueError):
    """A run-directory file the report needs is missing a field or holds a value of the wrong kind."""


def _field(row: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(row, dict) or key not in row:
        raise ReportError(f"{where}: missing field {key!r}")
    return row[key]


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ReportError(f"{path}: missing (the round's ratings stage is marked finished)")
    return read_jsonl(path)


def _json(path: Path) -> Any:
    try:
        return read_json(path)
    except ValueError as err:  # json.JSONDecodeError names neither the file nor the record
        raise ReportError(f"{path}: not valid JSON: {err}") from None


def members_of(run_dir: Path) -> list[str]:
    return RunState.load(run_dir / "state.json").members


# -- 1. ratings per round -------------------------------------------------------------------------------
@dataclass
class RatingHistory:
    """``ratings[m][i]`` is member m's reputation after round ``rounds[i]``; round 0 is the initial rating."""

    rounds: list[int]
    ratings: dict[str, list[float]]
    initial: float


def rating_history(run_dir: Path) -> RatingHistory:
    members = members_of(run_dir)
    initial = load_config(run_dir / "config.yaml").tournament.initial_rating
    rounds = [0]
    ratings = {m: [initial] for m in members}
    for r in rated_rounds(run_dir):
        path = round_dir(run_dir, r) / "ratings.json"
        after = _field(_json(path), "ratings", str(path))
        for m in members:
            ratings[m].append(float(_field(after, m, f"{path}: ratings")))
        rounds.append(r)
    return RatingHistory(rounds, ratings, initial)


# -- 3. win matrix --------------------------------------------------------------------------------------
@dataclass
class WinMatrix:
    """``wins[i][j]``: rated matches row i won against column j (a tie counts half); ``games[i][j]``: matches played."""

    members: list[str]
    wins: list[list[float]]
    games: list[list[int]]

    def share(self, i: int, j: int) -> float | None:
        return self.wins[i][j] / self.games[i][j] if self.games[i][j] else None


def win_matrix_from_outcomes(outcomes: Sequence[Outcome], members: Sequence[str]) -> WinMatrix:
    index = {m: i for i, m in enumerate(members)}
    n = len(members)
    wins = [[0.0] * n for _ in range(n)]
    games = [[0] * n for _ in range(n)]
    for a, b, result in outcomes:
        i, j = index[a], index[b]
        wins[i][j] += result
        wins[j][i] += 1.0 - result
        games[i][j] += 1
        games[j][i] += 1
    return WinMatrix(list(members), wins, games)


def win_matrix(run_dir: Path) -> WinMatrix:
    """Over every rated match of every rated round."""
    outcomes = [o for r in rated_rounds(run_dir) for o in outcomes_of_round(run_dir, r)]
    return win_matrix_from_outcomes(outcomes, members_of(run_dir))


# -- 4. judge agreement with the aggregate --------------------------------------------------------------
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


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _scores_by_judge(judgments: Sequence[dict[str, Any]], where: str) -> dict[tuple[str, str], dict[str, float]]:
    """(instruction id, model judged) -> {judge: score} for the judgments that could be read."""
    table: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for k, j in enumerate(judgments, 1):
        at = f"{where} record {k}"
        score = _field(j, "score", at)
        if score is not None:
            table[(_field(j, "instruction_id", at), _field(j, "model", at))][_field(j, "judge", at)] = float(score)
    return table


def agreement_from_rows(
    judgments: Sequence[dict[str, Any]], outcomes: Sequence[dict[str, Any]], where: str = "round"
) -> dict[str, JudgeAgreement]:
    """Per judge, over one round's judgments.jsonl and outcomes.jsonl rows."""
    table = _scores_by_judge(judgments, f"{where}/judgments.jsonl")
    result: dict[str, JudgeAgreement] = {}
    for k, o in enumerate(outcomes, 1):
        at = f"{where}/outcomes.jsonl record {k}"
        iid, a, b = _field(o, "instruction_id", at), _field(o, "model_a", at), _field(o, "model_b", at)
        agg_a, agg_b = _field(o, "score_a", at), _field(o, "score_b", at)
        if agg_a is None or agg_b is None:
            continue
        own_a, own_b = table.get((iid, a), {}), table.get((iid, b), {})
        for judge in own_a.keys() | own_b.keys():
            stats = result.setdefault(judge, JudgeAgreement(judge))
            for own, agg in ((own_a, agg_a), (own_b, agg_b)):
                if judge in own:
                    stats.scores += 1
                    stats.abs_dev += abs(own[judge] - agg)
            if judge in own_a and judge in own_b:
                mine = _sign(own_a[judge] - own_b[judge])
                stats.matches += 1
                stats.agree += mine == _sign(agg_a - agg_b)
                stats.ties += mine == 0
    return result


def _merge(total: JudgeAgreement, part: JudgeAgreement) -> None:
    total.matches += part.matches
    total.agree += part.agree
    total.ties += part.ties
    total.scores += part.scores
    total.abs_dev += part.abs_dev


def judge_agreement(run_dir: Path) -> list[JudgeAgreement]:
    """One row per judge over all rated rounds: pool members first (in pool order), then any other judge."""
    totals: dict[str, JudgeAgreement] = {m: JudgeAgreement(m) for m in members_of(run_dir)}
    for r in rated_rounds(run_dir):
        rd = round_dir(run_dir, r)
        part = agreement_from_rows(_rows(rd / "judgments.jsonl"), _rows(rd / "outcomes.jsonl"), rd.name)
        for judge, stats in sorted(part.items()):
            _merge(totals.setdefault(judge, JudgeAgreement(judge)), stats)
    return list(totals.values())


# -- 5. judge failures ----------------------------------------------------------------------------------
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
    judgments: Sequence[dict[str, Any]], members: Sequence[str], examples: int = 3, where: str = "judgments.jsonl"
) -> list[JudgeFailures]:
    """Per judge: counts, reasons, and up to ``examples`` distinct raw texts of failed judgments."""
    result = {m: JudgeFailures(m) for m in members}
    for k, j in enumerate(judgments, 1):
        at = f"{where} record {k}"
        judge = _field(j, "judge", at)
        stats = result.setdefault(judge, JudgeFailures(judge))
        stats.judgments += 1
        if _field(j, "score", at) is not None:
            continue
        stats.failures += 1
        stats.reasons[str(j.get("failure") or "no reason given")] += 1
        raw = j.get("raw")
        if raw is not None and len(stats.examples) < examples and str(raw) not in stats.examples:
            stats.examples.append(str(raw))
    return list(result.values())


def judge_failures(run_dir: Path, examples: int = 3) -> list[JudgeFailures]:
    judgments: list[dict[str, Any]] = []
    for r in rated_rounds(run_dir):
        judgments.extend(_rows(round_dir(run_dir, r) / "judgments.jsonl"))
    return failures_from_rows(judgments, members_of(run_dir), examples, "judgments.jsonl")


# -- 6. preference pairs --------------------------------------------------------------------------------
@dataclass
class PairExample:
    round: int
    prompt: str
    chosen: str
    rejected: str
    chosen_model: str
    rejected_model: str
    margin: float


def spread_by_margin(pairs: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` pairs evenly spaced over the margin ranking (largest first), so both clear and close calls show."""
    ranked = sorted(pairs, key=lambda p: -float(p["margin"]))
    if len(ranked) <= n:
        return ranked
    if n == 1:
        return ranked[:1]
    return [ranked[round(i * (len(ranked) - 1) / (n - 1))] for i in range(n)]


def preference_examples(run_dir: Path, n: int = 4) -> list[PairExample]:
    """A few pairs of the last rated round that kept any (the data the pool trains on last)."""
    for r in reversed(rated_rounds(run_dir)):
        path = round_dir(run_dir, r) / "pairs.jsonl"
        pairs = _rows(path)
        for k, p in enumerate(pairs, 1):
            for key in ("prompt", "chosen", "rejected", "chosen_model", "rejected_model", "margin"):
                _field(p, key, f"{path} record {k}")
        if pairs:
            return [
                PairExample(
                    r,
                    p["prompt"],
                    p["chosen"],
                    p["rejected"],
                    p["chosen_model"],
                    p["rejected_model"],
                    float(p["margin"]),
                )
                for p in spread_by_margin(pairs, n)
            ]
    return []


# -- 2. evaluation scores (eval.json, optional) ---------------------------------------------------------
@dataclass(frozen=True)
class EvalPoint:
    member: str
    round: int
    task: str
    score: float
    low: float | None = None
    high: float | None = None
    n: int | None = None


@dataclass
class EvalScores:
    """The evaluation written by ``sparta eval``, cells without a score (nothing scored) left out.

    ``pool_mean[task][round]`` and ``best[task][round]`` are eval.json's ``mean`` and ``best`` when it has them;
    without ``mean`` the pool mean is the plain mean of the pool members' scores (no interval).
    """

    tasks: list[str]
    rounds: list[int]
    points: list[EvalPoint]
    pool_mean: dict[str, dict[int, EvalPoint]]
    best: dict[str, dict[int, EvalPoint]] = field(default_factory=dict)

    def series(self, task: str, member: str) -> list[EvalPoint]:
        return sorted((p for p in self.points if p.task == task and p.member == member), key=lambda p: p.round)

    def members(self) -> list[str]:
        return list(dict.fromkeys(p.member for p in self.points))


def _number(value: Any, where: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ReportError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _round(value: Any, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError(f"{where}: expected a round number >= 0, got {value!r}")
    return value


def _eval_point(d: Any, member: str, r: int, task: str, where: str) -> EvalPoint | None:
    """``None`` for a cell with no score (``score: null``: nothing could be scored)."""
    score = _number(_field(d, "score", where), f"{where}.score", optional=True)
    if score is None:
        return None
    n = d.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise ReportError(f"{where}.n: expected an integer, got {n!r}")
    low = _number(d.get("low"), f"{where}.low", optional=True)
    high = _number(d.get("high"), f"{where}.high", optional=True)
    return EvalPoint(member, r, task, score, low, high, n)


def _score_entry(d: Any, where: str) -> EvalPoint | None:
    member, task = _field(d, "member", where), _field(d, "task", where)
    if not isinstance(member, str) or not isinstance(task, str):
        raise ReportError(f"{where}: member and task must be strings, got {member!r} and {task!r}")
    return _eval_point(d, member, _round(_field(d, "round", where), f"{where}.round"), task, where)


def _by_round(data: Any, key: str, where: str) -> dict[str, dict[int, EvalPoint]]:
    """eval.json's ``mean`` or ``best``: {round: {task: entry}} -> {task: {round: point}}."""
    table = data.get(key) or {}
    if not isinstance(table, dict):
        raise ReportError(f"{where}: {key!r} must map rounds to tasks, got {type(table).__name__}")
    result: dict[str, dict[int, EvalPoint]] = defaultdict(dict)
    for rkey, tasks in table.items():
        r = _round(rkey, f"{where}: {key}[{rkey!r}]")
        if not isinstance(tasks, dict):
            raise ReportError(f"{where}: {key}[{rkey!r}] must map tasks to scores")
        for task, entry in tasks.items():
            at = f"{where}: {key}[{rkey!r}][{task!r}]"
            member = entry.get("member") if isinstance(entry, dict) and key == "best" else "pool mean"
            point = _eval_point(entry, str(member), r, str(task), at)
            if point is not None:
                result[str(task)][r] = point
    return {task: dict(sorted(points.items())) for task, points in result.items()}


def _plain_pool_mean(points: Sequence[EvalPoint], members: Sequence[str]) -> dict[str, dict[int, EvalPoint]]:
    pool = set(members)
    cells: dict[tuple[str, int], list[float]] = defaultdict(list)
    for p in points:
        if p.member in pool:
            cells[(p.task, p.round)].append(p.score)
    result: dict[str, dict[int, EvalPoint]] = defaultdict(dict)
    for (task, r), values in sorted(cells.items()):
        result[task][r] = EvalPoint("pool mean", r, task, statistics.fmean(values))
    return dict(result)


def eval_scores_from(data: Any, members: Sequence[str], where: str = "eval.json") -> EvalScores:
    """Validate eval.json's content (errors name the entry and field)."""
    if not isinstance(data, dict):
        raise ReportError(f"{where}: expected an object with 'scores', got {type(data).__name__}")
    scores = _field(data, "scores", where)
    if not isinstance(scores, list):
        raise ReportError(f"{where}: 'scores' must be a list, got {type(scores).__name__}")
    entries = [_score_entry(d, f"{where}: scores[{i}]") for i, d in enumerate(scores)]
    points = [p for p in entries if p is not None]
    listed = data.get("tasks") or []
    tasks = list(dict.fromkeys([str(t) for t in listed] + [p.task for p in points]))
    pool_mean = _by_round(data, "mean", where) if data.get("mean") else _plain_pool_mean(points, members)
    return EvalScores(tasks, sorted({p.round for p in points}), points, pool_mean, _by_round(data, "best", where))


def eval_scores(run_dir: Path) -> EvalScores | None:
    """``None`` when the run has not been evaluated (no eval.json)."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return None
    return eval_scores_from(_json(path), members_of(run_dir), str(path))


# -- 7. diversity per round (from the evaluation's answers, optional) -------------------------------------
def diversity_per_round(run_dir: Path) -> list[tuple[int, dict[str, Any]]]:
    """(round, diversity measures) for every round ``sparta eval`` answered: who is expert at what, and how often
    members' extracted answers differ. It reuses the evaluation's greedy answers, so it costs no generation."""
    from sparta.pool_init.diversity import diversity_from_answers, verifiable
    from sparta.records import Instruction

    base = Path(run_dir) / "eval_responses"
    result = []
    for rd in sorted(base.glob("round_*")) if base.is_dir() else []:
        items: dict[str, Instruction] = {}
        answers: dict[str, dict[str, str]] = {}
        for path in sorted(rd.glob("*.jsonl")):
            for row in _rows(path):
                iid = f"{path.stem}/{row['instruction_id']}"
                items[iid] = Instruction(
                    iid, row["instruction"], row.get("domain") or path.stem, row.get("gold"), row.get("answer_type")
                )
                answers.setdefault(row["member"], {})[iid] = row["response"]
        if len(answers) >= 2 and verifiable(list(items.values())):
            result.append((int(rd.name.split("_")[1]), diversity_from_answers(list(items.values()), answers)))
    return result
