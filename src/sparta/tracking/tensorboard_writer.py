"""TensorBoard: scalar summaries in event files, written with TensorBoard's own ``EventFileWriter`` (no torch).

Every process that continues the run opens a new event file. A continuing round loop first writes a
``SessionLog.START`` at the first round not known to be logged, which tells TensorBoard's readers to drop whatever
an earlier, killed process wrote from that step on: a round is never shown twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from sparta.tracking.writers import Axis, WriterSetup, require


class TensorBoardWriter:
    library = "tensorboard.summary.writer.event_file_writer"

    def __init__(self, setup: WriterSetup) -> None:
        writer_module = require(self.library, "tensorboard")
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._event, self._summary = Event, Summary
        self._writer = writer_module.EventFileWriter(str(setup.directory))
        if setup.resume_step is not None:
            restart = SessionLog(status=SessionLog.START)
            self._writer.add_event(Event(wall_time=time.time(), step=setup.resume_step, session_log=restart))

    def log(self, metrics: Mapping[str, float], step: int, axis: Axis) -> None:
        values = [self._summary.Value(tag=name, simple_value=value) for name, value in metrics.items()]
        self._writer.add_event(self._event(wall_time=time.time(), step=step, summary=self._summary(value=values)))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
