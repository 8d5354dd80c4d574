"""Experiment tracking of a whole run: the round loop's observer, and the hook through which ``sparta eval`` logs.

A round is logged once, when its last stage (training) finishes, from the run directory's files; the ledger
(``tracking/tracking.json``) records which tracker has been given which round and which evaluation scores. A
resumed run catches up on finished rounds that a killed process had not logged and skips the rest. Stage wall times
are measured between the stage ends this process sees (the first from the moment the run directory was opened); a
stage resumed after a kill counts the resuming process's time only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sparta.config import SpartaConfig, TrackerConfig
from sparta.pipeline.observer import NoObserver, StageObserver
from sparta.pipeline.state import RunState
from sparta.rundir import TRACKING, TRACKING_JSON
from sparta.tracking.ledger import TrackingLedger, updating
from sparta.tracking.metrics import eval_metrics, round_metrics
from sparta.tracking.writers import WRITERS, TrackingWriter, WriterSetup, check_installed


class RunTracker:
    """Logs one run directory to every tracker its configuration names."""

    def __init__(self, config: SpartaConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.ledger_path = self.run_dir / TRACKING / TRACKING_JSON
        self._classes = {spec.type: WRITERS.get(spec.type) for spec in config.tracking}
        for tracker, writer_class in self._classes.items():
            check_installed(writer_class.library, tracker)  # a missing library stops the run before any work
        self._writers: dict[str, TrackingWriter] = {}
        self._clock = time.perf_counter()

    # -- the round loop's observer ------------------------------------------------------------------------
    def opened(self, state: RunState) -> None:
        self._open(resuming_loop=True)
        self._clock = time.perf_counter()
        for round_index in state.completed_rounds():
            self._log_round(round_index)

    def stage_finished(self, state: RunState, round_index: int, stage: str) -> None:
        seconds = time.perf_counter() - self._clock
        with updating(self.ledger_path) as ledger:
            ledger.stage_seconds.setdefault(str(round_index), {})[stage] = seconds
        if state.round_complete(round_index):
            self._log_round(round_index)
        self._clock = time.perf_counter()  # the next stage's time starts after the logging

    def close(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()

    # -- sparta eval --------------------------------------------------------------------------------------
    def log_evaluation(self, evaluation: Mapping[str, Any]) -> None:
        """Log ``eval.json``'s scores; a score already logged for a (round, task, member) is not logged again."""
        self._open(resuming_loop=False)
        try:
            with updating(self.ledger_path) as ledger:
                for round_index, metrics in sorted(eval_metrics(evaluation).items()):
                    for tracker, writer in self._writers.items():
                        done = ledger.eval_logged(tracker, round_index)
                        new = {name: value for name, value in metrics.items() if name not in done}
                        if new:
                            writer.log(new, round_index, "eval_round")
                            ledger.mark_eval(tracker, round_index, set(new))
        finally:
            self.close()

    # -- internals ----------------------------------------------------------------------------------------
    def _open(self, resuming_loop: bool) -> None:
        try:
            with updating(self.ledger_path) as ledger:
                for spec in self.config.tracking:
                    setup = self._setup(spec, ledger, resuming_loop)
                    self._writers[spec.type] = self._classes[spec.type](setup)
        except BaseException:
            self.close()
            raise

    def _setup(self, spec: TrackerConfig, ledger: TrackingLedger, resuming_loop: bool) -> WriterSetup:
        directory = self.run_dir / TRACKING / spec.type if spec.dir is None else self.run_dir / spec.dir
        directory.mkdir(parents=True, exist_ok=True)
        return WriterSetup(
            directory=directory,
            project=spec.project or self.config.run.name,
            name=self.run_dir.resolve().name,
            run_id=ledger.run_id,
            config=self.config.model_dump(mode="json"),
            offline=spec.offline,
            saved=ledger.writer(spec.type)["state"],
            resume_step=ledger.resume_step(spec.type) if resuming_loop else None,
        )

    def _log_round(self, round_index: int) -> None:
        with updating(self.ledger_path) as ledger:
            pending = [tracker for tracker in self._writers if not ledger.logged_round(tracker, round_index)]
            if not pending:
                return
            metrics = round_metrics(self.run_dir, round_index, ledger.stage_seconds.get(str(round_index)))
            for tracker in pending:
                self._writers[tracker].log(metrics, round_index, "round")
                ledger.mark_round(tracker, round_index)


def build_observer(config: SpartaConfig, run_dir: Path) -> StageObserver:
    """The round loop's observer: a :class:`RunTracker` when the configuration names trackers."""
    return RunTracker(config, run_dir) if config.tracking else NoObserver()


def track_evaluation(config: SpartaConfig, run_dir: Path, evaluation: Mapping[str, Any]) -> None:
    """Log ``sparta eval``'s scores to the run's trackers, if it has any."""
    if config.tracking:
        RunTracker(config, run_dir).log_evaluation(evaluation)
