"""``state.json``: the run's memory between stages and processes.

It holds the reputation state (ratings, deviations, rating-change history, kappa's counter), the seed, and
which stages of which rounds are finished. It is rewritten atomically at the end of each stage, so it is
always the state at some stage boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparta.rundir import STATE_JSON, RunFileDamagedError, read_json, write_json
from sparta.tournament.reputation import ReputationState

STAGES = ("matches", "responses", "judgments", "ratings", "training")
STATE_VERSION = 1


@dataclass
class RunState:
    seed: int
    members: list[str]
    reputation: ReputationState
    finished: dict[int, list[str]] = field(default_factory=dict)

    def done(self, round_index: int, stage: str) -> bool:
        return stage in self.finished.get(round_index, [])

    def mark(self, round_index: int, stage: str) -> None:
        stages = self.finished.setdefault(round_index, [])
        if stage not in stages:
            stages.append(stage)

    def round_complete(self, round_index: int) -> bool:
        return all(self.done(round_index, s) for s in STAGES)

    def completed_rounds(self) -> list[int]:
        return sorted(r for r in self.finished if self.round_complete(r))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "members": list(self.members),
            "reputation": self.reputation.to_dict(),
            "finished": {str(r): list(s) for r, s in sorted(self.finished.items())},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = STATE_JSON) -> RunState:
        if not isinstance(d, dict) or d.get("version") != STATE_VERSION:
            found = d.get("version") if isinstance(d, dict) else type(d).__name__
            raise RunFileDamagedError(f"{source}: unsupported version {found!r} (expected {STATE_VERSION})")
        try:
            return cls(
                seed=int(d["seed"]),
                members=list(d["members"]),
                reputation=ReputationState.from_dict(d["reputation"]),
                finished={int(r): list(s) for r, s in d["finished"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise RunFileDamagedError(f"{source}: damaged run state ({type(err).__name__}: {err})") from None

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> RunState:
        return cls.from_dict(read_json(path), str(path))
