"""``tracking/tracking.json``: what each tracker has been given, so a resumed run never logs a step twice.

    {"run_id": "3f9c2a1b",
     "stage_seconds": {"1": {"matches": 0.02, "responses": 41.5, ...}},
     "writers": {"tensorboard": {"rounds": [1, 2], "eval": {"0": ["eval/math/a", ...]}, "state": {}},
                 "mlflow": {"rounds": [1], "eval": {}, "state": {"run_id": "a8e1..."}}}}

A round is logged when its last stage finishes and recorded here right after each tracker has written it; a tracker
added to a run later catches up on the finished rounds. ``sparta eval`` may run beside ``sparta run`` on the same
run directory, so every change happens under an exclusive lock and re-reads the file first.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from sparta.rundir import read_json, write_json


@dataclass
class TrackingLedger:
    run_id: str
    stage_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    writers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def writer(self, tracker: str) -> dict[str, Any]:
        return self.writers.setdefault(tracker, {"rounds": [], "eval": {}, "state": {}})

    def logged_round(self, tracker: str, round_index: int) -> bool:
        return round_index in self.writer(tracker)["rounds"]

    def mark_round(self, tracker: str, round_index: int) -> None:
        rounds = self.writer(tracker)["rounds"]
        if round_index not in rounds:
            rounds.append(round_index)
            rounds.sort()

    def resume_step(self, tracker: str) -> int:
        """The first round after the last one this tracker was given."""
        return max(self.writer(tracker)["rounds"], default=0) + 1

    def eval_logged(self, tracker: str, round_index: int) -> set[str]:
        return set(self.writer(tracker)["eval"].get(str(round_index), []))

    def mark_eval(self, tracker: str, round_index: int, names: set[str]) -> None:
        logged = self.writer(tracker)["eval"]
        logged[str(round_index)] = sorted(set(logged.get(str(round_index), [])) | names)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "stage_seconds": self.stage_seconds, "writers": self.writers}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackingLedger:
        return cls(run_id=str(data["run_id"]), stage_seconds=data["stage_seconds"], writers=data["writers"])


@contextmanager
def updating(path: Path) -> Iterator[TrackingLedger]:
    """The ledger at ``path`` (a new one with a fresh run id if none), saved atomically when the block ends, even by
    an error: it only ever records what was done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock")):
        ledger = TrackingLedger.from_dict(read_json(path)) if path.exists() else TrackingLedger(secrets.token_hex(4))
        try:
            yield ledger
        finally:  # what was logged before an error stays recorded
            write_json(path, ledger.to_dict())
