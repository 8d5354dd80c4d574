"""What the round loop tells an observer (experiment tracking): the run is open, a stage finished, the run ends.

An observer is told about a stage only after the stage's files and ``state.json`` are written, so whatever it
reads from the run directory is final.
"""

from __future__ import annotations

from typing import Protocol

from sparta.pipeline.state import RunState


class StageObserver(Protocol):
    def opened(self, state: RunState) -> None:
        """The run directory is open (fresh or resumed) and no stage has run yet in this process."""
        ...

    def stage_finished(self, state: RunState, round_index: int, stage: str) -> None: ...

    def close(self) -> None:
        """The loop ends, normally or by an exception."""
        ...


class NoObserver:
    """Observes nothing: a run without ``tracking``."""

    def opened(self, state: RunState) -> None:
        return None

    def stage_finished(self, state: RunState, round_index: int, stage: str) -> None:
        return None

    def close(self) -> None:
        return None
