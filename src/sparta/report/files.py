"""Reading a run directory for the report: every missing file or field is an error naming the file and record.

The report reads only the files a round writes (README, "A run directory"), so a report can be made of any run,
finished or not, on any machine. Rounds are those whose ratings stage finished (``leaderboard.rated_rounds``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparta.errors import SpartaError
from sparta.pipeline.state import RunState
from sparta.rundir import STATE_JSON, read_json, read_jsonl


class ReportError(SpartaError, ValueError):
    """A run-directory file the report needs is missing a field or holds a value of the wrong kind."""


def required(row: dict[str, Any], key: str, where: str) -> Any:
    """``row[key]``, or an error naming ``where`` and the missing field."""
    if not isinstance(row, dict) or key not in row:
        raise ReportError(f"{where}: missing field {key!r}")
    return row[key]


def round_rows(path: Path) -> list[dict[str, Any]]:
    """The records of a file a finished round must have."""
    if not path.is_file():
        raise ReportError(f"{path}: missing (the round's ratings stage is marked finished)")
    return read_jsonl(path)


def json_file(path: Path) -> Any:
    try:
        return read_json(path)
    except ValueError as err:  # json.JSONDecodeError names neither the file nor the record
        raise ReportError(f"{path}: not valid JSON: {err}") from None


def members_of(run_dir: Path) -> list[str]:
    return RunState.load(Path(run_dir) / STATE_JSON).members
