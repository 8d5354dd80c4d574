"""What ``sparta eval`` writes and everything else reads: the model of ``eval.json``, and the result files.

``eval.json``::

    {"rounds": [0, 2], "tasks": ["procedural"],
     "scores": [{"score": 0.4, "low": 0.3, "high": 0.5, "n": 80, "member": "a", "round": 0, "task": "procedural"},
                ...],
     "best": {"0": {"procedural": {"score": 0.4, "low": 0.3, "high": 0.5, "n": 80, "member": "a"}}, ...},
     "mean": {"0": {"procedural": {"score": 0.35, "low": 0.28, "high": 0.42, "n": 80}}, ...},
     "paired": {"2": {"procedural": {
         "baseline": 0,
         "members": {"a": {"diff": 0.05, "low": -0.02, "high": 0.12, "n": 80, "gained": 6, "lost": 2,
                           "p_value": 0.289}, ...},
         "mean": {"diff": 0.03, "low": -0.01, "high": 0.07, "n": 80, ...},
         "best": {"diff": 0.01, ..., "member": "b", "baseline_member": "a"}}}}}

``best``, ``mean`` and ``paired`` are keyed by round (as a string, JSON keys being strings) then task. ``mean`` is
the pool mean as ``sparta.evaluation.summary.pool_item_means`` defines it, the one definition every reader shows.
``n`` counts scored items (a judgment that could not be read is left out). ``paired`` compares every later round
with the first evaluated one on the same items (``sparta.evaluation.paired``). ``eval.csv`` holds the ``scores``
rows.

The report and ``sparta compare`` read the file through :func:`load_results` only, so a damaged file is named by
entry and field (``eval.json: scores[3].score: expected a finite number, got 'high'``).
"""

from __future__ import annotations

import csv
import io
import math
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from sparta.errors import SpartaError
from sparta.rundir import atomic_write_text, read_json, round_dir, write_json, write_jsonl

EVAL_JSON = "eval.json"
EVAL_CSV = "eval.csv"
RESPONSES_DIR = "eval_responses"
CSV_COLUMNS = ("member", "round", "task", "score", "low", "high", "n")


class EvalFileError(SpartaError, ValueError):
    """``eval.json`` cannot be read: the message names the file, the entry and the field."""


# --------------------------------------------------------------------------------------------- value kinds


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _round_number(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a round number >= 0, got {value!r}")
    return value


def _count(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a count >= 0, got {value!r}")
    return value


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


Number = Annotated[float, BeforeValidator(_number)]
Round = Annotated[int, BeforeValidator(_round_number)]
Count = Annotated[int, BeforeValidator(_count)]
Text = Annotated[str, BeforeValidator(_text)]


# --------------------------------------------------------------------------------------------- the model


class Estimate(BaseModel):
    """A mean score on [0, 1] over ``n`` items with its bootstrap interval; ``score`` None when nothing was scored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: Number | None
    low: Number | None = None
    high: Number | None = None
    n: Count | None = None


class MemberScore(Estimate):
    """One member's estimate at one round on one task."""

    member: Text
    round: Round
    task: Text


class BestScore(Estimate):
    """The round's highest-scoring member on a task (None when no member has a score)."""

    member: Text | None = None


class PairedChange(BaseModel):
    """A round minus the baseline round on the items scored in both (``sparta.evaluation.paired``): the mean
    difference ``diff`` with its paired bootstrap interval; for 0/1 scores also the items ``gained`` (0 -> 1) and
    ``lost`` (1 -> 0) and McNemar's exact two-sided ``p_value``. All None when no item was scored in both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    diff: Number | None
    low: Number | None = None
    high: Number | None = None
    n: Count
    gained: Count | None = None
    lost: Count | None = None
    p_value: Number | None = None


class BestChange(PairedChange):
    """The best member of the round against the best member of the baseline round (who may differ)."""

    member: Text | None = None
    baseline_member: Text | None = None


class TaskChanges(BaseModel):
    """One task at one round, paired with the same task at the ``baseline`` round."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: Round
    members: dict[str, PairedChange]
    mean: PairedChange
    best: BestChange


class EvalResults(BaseModel):
    """Everything ``eval.json`` holds."""

    model_config = ConfigDict(extra="forbid")

    rounds: list[Round]
    tasks: list[Text]
    scores: list[MemberScore]
    best: dict[Round, dict[str, BestScore]] = {}
    mean: dict[Round, dict[str, Estimate]] = {}
    paired: dict[Round, dict[str, TaskChanges]] = {}

    @model_validator(mode="after")
    def _cells_are_listed(self) -> EvalResults:
        for index, entry in enumerate(self.scores):
            if entry.round not in self.rounds or entry.task not in self.tasks:
                raise ValueError(
                    f"scores[{index}]: round {entry.round} / task {entry.task!r} is not listed in 'rounds' / 'tasks'"
                )
        return self

    def members(self) -> list[str]:
        """Every member with an entry in ``scores``, in file order."""
        return list(dict.fromkeys(s.member for s in self.scores))

    def score(self, member: str, round_index: int, task: str) -> MemberScore:
        return next(s for s in self.scores if (s.member, s.round, s.task) == (member, round_index, task))

    def series(self, task: str, member: str) -> list[MemberScore]:
        """The member's scored rounds on ``task``, in round order."""
        scored = [s for s in self.scores if s.task == task and s.member == member and s.score is not None]
        return sorted(scored, key=lambda s: s.round)

    def pool_mean(self, task: str) -> dict[int, Estimate]:
        """``mean`` of ``task`` by round, rounds with no score left out."""
        return {
            r: cells[task] for r, cells in sorted(self.mean.items()) if task in cells and cells[task].score is not None
        }

    def change(self, round_index: int, task: str) -> TaskChanges | None:
        """``task`` at ``round_index`` paired with the baseline round; None for the baseline round itself, or in a
        file written before eval.json had paired statistics."""
        return self.paired.get(round_index, {}).get(task)

    def best_member(self, task: str) -> dict[int, BestScore]:
        """``best`` of ``task`` by round, rounds with no score left out."""
        return {
            r: cells[task] for r, cells in sorted(self.best.items()) if task in cells and cells[task].score is not None
        }


# --------------------------------------------------------------------------------------------- reading


def _unwrap(kind: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` to ``X``."""
    while True:
        origin = get_origin(kind)
        if origin is Annotated:
            kind = get_args(kind)[0]
        elif origin in (Union, types.UnionType):
            kind = next(arg for arg in get_args(kind) if arg is not type(None))
        else:
            return kind


def _location(loc: Sequence[int | str]) -> str:
    """A pydantic error location as the file reads: ``scores[3].score``, ``mean['last']``."""
    text, kind = "", _unwrap(EvalResults)
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(kind, type) and issubclass(kind, BaseModel) and part in kind.model_fields:
            text += f".{part}" if text else str(part)
            kind = _unwrap(kind.model_fields[part].annotation)
        elif get_origin(kind) is dict:
            text, kind = text + f"[{part!r}]", _unwrap(get_args(kind)[1])
        elif get_origin(kind) is list:
            text, kind = text + f"[{part}]", _unwrap(get_args(kind)[0])
        else:
            text += f".{part}"
    return text


def _problem(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "missing":
        parent = _location(loc[:-1])
        return f"{parent + ': ' if parent else ''}missing field {loc[-1]!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    where = _location(loc)
    return f"{where}: {message}" if where else message


def results_from(data: Any, where: str = EVAL_JSON) -> EvalResults:
    """Validate eval.json's content; errors name the entry and field."""
    try:
        return EvalResults.model_validate(data)
    except ValidationError as err:
        raise EvalFileError("; ".join(f"{where}: {_problem(e)}" for e in err.errors())) from None


def load_results(run_dir: Path) -> EvalResults | None:
    """The run's evaluation, or None when it has not been evaluated (no eval.json)."""
    path = Path(run_dir) / EVAL_JSON
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except ValueError as err:  # json.JSONDecodeError names neither the file nor the record
        raise EvalFileError(f"{path}: not valid JSON: {err}") from None
    return results_from(data, str(path))


# --------------------------------------------------------------------------------------------- writing


def responses_path(run_dir: Path, round_index: int, task: str) -> Path:
    return round_dir(Path(run_dir) / RESPONSES_DIR, round_index) / f"{task}.jsonl"


def write_responses(run_dir: Path, round_index: int, task: str, rows: Sequence[dict[str, Any]]) -> None:
    write_jsonl(responses_path(run_dir, round_index, task), rows)


def write_results(run_dir: Path, results: EvalResults) -> None:
    """``eval.json`` and ``eval.csv``, each written atomically."""
    write_json(Path(run_dir) / EVAL_JSON, results.model_dump(mode="json"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in results.scores:
        row = entry.model_dump()
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in CSV_COLUMNS})
    atomic_write_text(Path(run_dir) / EVAL_CSV, buffer.getvalue())
