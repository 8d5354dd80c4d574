"""Bad input records: where they are, what is wrong, and whether loading stops or skips them.

A record that cannot become an instruction is never dropped silently: it either stops loading with an error
that names file, line (or record key) and field, or it is logged and counted on the loaded list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sparta.errors import SpartaError
from sparta.records import Instruction

logger = logging.getLogger("sparta.tasks")

OnBadRecord = Literal["skip", "error"]


@dataclass(frozen=True)
class Location:
    """Where a record lives: a file (or dataset) and a line number, a record key, a row index, or none."""

    source: str
    line: int | None = None
    key: str | None = None
    row: int | None = None

    def __str__(self) -> str:
        text = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.key is not None:
            text += f": record {self.key!r}"
        return text if self.row is None else f"{text}: row {self.row}"


class TaskDataError(SpartaError, ValueError):
    """An input record (or file) that cannot be read as an instruction."""

    def __init__(self, location: Location, field: str, problem: str) -> None:
        self.location = location
        self.field = field
        self.problem = problem
        super().__init__(f"{location}: field {field!r}: {problem}")


class LoadedInstructions(list):
    """The instructions of a task (a plain list) plus the bad records that were skipped while loading it."""

    def __init__(self, instructions: Iterable[Instruction] = (), bad_records: Iterable[TaskDataError] = ()) -> None:
        super().__init__(instructions)
        self.bad_records: tuple[TaskDataError, ...] = tuple(bad_records)


class BadRecords:
    """Collects the bad records of one load: raises on the first with "error", logs and counts them with "skip"."""

    def __init__(self, on_bad_record: OnBadRecord, task: str) -> None:
        if on_bad_record not in ("skip", "error"):
            raise ValueError(f"on_bad_record must be 'skip' or 'error', got {on_bad_record!r}")
        self.on_bad_record = on_bad_record
        self.task = task
        self.errors: list[TaskDataError] = []

    def report(self, location: Location, field: str, problem: str) -> None:
        error = TaskDataError(location, field, problem)
        if self.on_bad_record == "error":
            raise error
        logger.warning("task %r: skipping bad record: %s", self.task, error)
        self.errors.append(error)

    def finish(self, instructions: Iterable[Instruction]) -> LoadedInstructions:
        loaded = LoadedInstructions(instructions, self.errors)
        if self.errors:
            logger.warning("task %r: skipped %d bad record(s), kept %d", self.task, len(self.errors), len(loaded))
        return loaded
