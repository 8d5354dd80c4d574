"""How the round loop reports progress: a small interface the CLI fills with rich progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def stage(self, description: str, total: int) -> contextmanager[Callable[[int], None]]: ...

    def log(self, message: str) -> None: ...


class SilentReporter:
    """Reports nothing: for tests and library use."""

    @contextmanager
    def stage(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        yield lambda n: None

    def log(self, message: str) -> None:
        return None
