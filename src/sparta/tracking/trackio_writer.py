"""Trackio: a local SQLite database per project (``TRACKIO_DIR=DIR trackio show --project PROJECT``).

Trackio reads its directory from ``TRACKIO_DIR`` once, when it is first imported, so sparta sets it just before;
a trackio imported earlier with another directory is an error rather than a run logged somewhere unexpected.
Trackio identifies a run by its name within the project: the run directory's name plus its tracking id, resumed by
every process that continues the run (and ``sparta eval``). No dashboard, Space or system-metrics thread starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from sparta.tracking.writers import Axis, TrackerMissingError, WriterSetup, require


def _direct_to(directory: Path) -> None:
    if "trackio" not in sys.modules:
        os.environ["TRACKIO_DIR"] = str(directory)
        return
    current = Path(sys.modules["trackio"].utils.TRACKIO_DIR).resolve()
    if current != directory.resolve():
        raise TrackerMissingError(
            f"tracking: trackio was already imported in this process with TRACKIO_DIR={current}, so it cannot write "
            f"to {directory}; set the tracker's dir to {current} or start a new process"
        )


class TrackioWriter:
    library = "trackio"

    def __init__(self, setup: WriterSetup) -> None:
        _direct_to(setup.directory)
        trackio = require(self.library, "trackio")
        self._run = trackio.init(
            project=setup.project,
            name=f"{setup.name}-{setup.run_id}",
            config=setup.config,
            resume="allow",
            embed=False,
            auto_log_cpu=False,
            auto_log_gpu=False,
        )

    def log(self, metrics: Mapping[str, float], step: int, axis: Axis) -> None:
        self._run.log(dict(metrics), step=step)
        self._persist()

    def _persist(self) -> None:
        """Write the queued metrics to the database now, before the ledger marks the round as logged.

        Trackio queues ``log`` calls for a thread that writes every half second; a process killed in that window
        would lose a round the ledger already counts. Trackio (0.43) has no public flush, so this takes the queue
        the way its own thread does, under the same lock.
        """
        flush = getattr(self._run, "_flush_queues_inline", None)
        lock = getattr(self._run, "_client_lock", None)
        if flush is None or lock is None:
            raise TrackerMissingError(
                f"tracking: trackio {getattr(sys.modules['trackio'], '__version__', '?')} has no way to write its "
                "queue now; install trackio 0.43"
            )
        with lock:
            flush()

    def close(self) -> None:
        self._run.finish()
