"""The task registry: a task name -> a loader ``(options, *, on_bad_record) -> list[Instruction]``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sparta.errors import SpartaError
from sparta.records import Instruction
from sparta.registry import Registry
from sparta.tasks.bad_records import LoadedInstructions, OnBadRecord

TaskLoader = Callable[..., list[Instruction]]
TASKS: Registry[TaskLoader] = Registry("task")

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class TaskError(SpartaError, ValueError):
    """A task that cannot give instructions: a missing file, no instructions at all, colliding ids."""


class TaskFileNotFoundError(TaskError, FileNotFoundError):
    """A task file that does not exist; the message says what the file is and how to get it, where known."""


class TaskOptionsError(TaskError):
    """A task's options do not validate; the message names the task and every faulty option."""


def parse_options(model: type[OptionsT], options: Mapping[str, Any], task: str) -> OptionsT:
    """Validate a loader's options, naming unknown ones alongside the known ones."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as e:
        known = ", ".join(model.model_fields)
        problems = []
        for error in e.errors():
            where = ".".join(str(part) for part in error["loc"]) or "<options>"
            message = f"unknown option (known: {known})" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"option {where!r}: {message}")
        raise TaskOptionsError(f"task {task!r}: " + "; ".join(problems)) from None


def load_task(
    name: str, options: Mapping[str, Any] | None = None, *, on_bad_record: OnBadRecord | None = None
) -> list[Instruction]:
    """Load a registered task. ``on_bad_record`` ("error" by default) may also come as an option of that name."""
    options = dict(options or {})
    from_options = options.pop("on_bad_record", "error")
    policy = on_bad_record or from_options
    if policy not in ("skip", "error"):
        raise TaskOptionsError(f"task {name!r}: option 'on_bad_record': must be 'skip' or 'error', got {policy!r}")
    instructions = TASKS.get(name)(options, on_bad_record=policy)
    if not instructions:
        skipped = len(getattr(instructions, "bad_records", ()))
        raise TaskError(f"task {name!r} has no instructions ({skipped} bad record(s) skipped)")
    return instructions if isinstance(instructions, LoadedInstructions) else LoadedInstructions(instructions)


def task_names() -> list[str]:
    return TASKS.names()
