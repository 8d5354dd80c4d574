"""What an experiment tracker's writer must do, and the registry that ``tracking:`` in the configuration names.

A writer receives flat ``{metric name: number}`` mappings, each with the step it belongs to (a round index) and
the axis that step counts (``round`` for the run's own metrics, ``eval_round`` for ``sparta eval`` scores). Each
writer uses its library's own writer. Entries are lazy ``"module:Class"`` targets, so the configured names are
checked when the configuration loads without importing tensorboard, wandb, mlflow or trackio.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol

from sparta.errors import SpartaError
from sparta.registry import Registry

Axis = Literal["round", "eval_round"]


@dataclass(frozen=True)
class WriterSetup:
    """Everything a writer needs to open (or reopen) the tracked run of one run directory."""

    directory: Path
    """Where the writer writes; it exists."""
    project: str
    name: str
    """The tracked run's display name: the run directory's name."""
    run_id: str
    """Stable across every process that continues the run directory (kept in ``tracking/tracking.json``)."""
    config: dict[str, Any]
    """The run's resolved configuration, logged once as the tracked run's parameters."""
    offline: bool = True
    saved: dict[str, Any] = field(default_factory=dict)
    """The writer's own state kept in the run directory (e.g. MLflow's run id); a writer may add keys."""
    resume_step: int | None = None
    """The first round not known to be logged: a writer that can hide what a killed process logged from this
    step on does so (tensorboard). None when nothing of the round loop is logged (``sparta eval``)."""


class TrackingWriter(Protocol):
    library: str
    """The importable module the writer needs; a missing one is reported before the run starts."""

    def __init__(self, setup: WriterSetup) -> None: ...

    def log(self, metrics: Mapping[str, float], step: int, axis: Axis) -> None:
        """Record ``metrics`` at ``step`` of ``axis``, durably enough that a later process may rely on it."""
        ...

    def close(self) -> None: ...


WRITERS: Registry[type[TrackingWriter]] = Registry("tracker")
"""tracker name -> its writer class, imported on first use."""

WRITERS.register("tensorboard", "sparta.tracking.tensorboard_writer:TensorBoardWriter")
WRITERS.register("wandb", "sparta.tracking.wandb_writer:WandbWriter")
WRITERS.register("mlflow", "sparta.tracking.mlflow_writer:MlflowWriter")
WRITERS.register("trackio", "sparta.tracking.trackio_writer:TrackioWriter")


class TrackerMissingError(SpartaError, ImportError):
    """A configured tracker whose library is not installed; the message names the extra to install."""


def _missing(module: str, tracker: str) -> TrackerMissingError:
    return TrackerMissingError(
        f"tracking: {tracker} needs the {module.split('.')[0]!r} package, which is not installed: "
        f"pip install 'sparta-align[{tracker}]' (or remove {tracker} from tracking)"
    )


def check_installed(module: str, tracker: str) -> None:
    """Fail now if ``module`` cannot be found, without importing it (some libraries must be set up first)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        found = False
    if not found:
        raise _missing(module, tracker)


def require(module: str, tracker: str) -> ModuleType:
    """Import ``module`` for ``tracker``, or say which extra of sparta-align installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise _missing(module, tracker) from err
