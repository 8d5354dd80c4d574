"""Which rounds to evaluate and which saved adapters stand for each.

Round 0 is the pool as it started (each member's configured adapter, or the fresh LoRA that equals the base);
round r is the pool after round r's training, i.e. ``round_r/adapters/MEMBER``. A round whose training was
skipped saved no adapters: the pool was then as trained in the latest earlier round that saved them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sparta.errors import SpartaError
from sparta.pipeline.state import RunState
from sparta.rundir import ADAPTER_CONFIG, round_dir
from sparta.rundir import adapter_dir as _member_adapter

INITIAL = 0


class RoundError(SpartaError, ValueError):
    """A requested round that this run directory cannot provide."""


def parse_rounds(text: str) -> list[int]:
    """``"0,2"`` -> [0, 2]: the ``--rounds`` option of ``sparta eval``."""
    rounds = []
    for piece in text.split(","):
        if not piece.strip().isdigit():
            raise RoundError(
                f"--rounds {text!r}: {piece.strip()!r} is not a round number; give comma-separated rounds such as 0,2 "
                "(0 is the start)"
            )
        rounds.append(int(piece))
    return rounds


def resolve_rounds(state: RunState, rounds: Sequence[int] | None, run_dir: Path) -> list[int]:
    """The requested rounds, sorted and unique; by default 0 and the last completed round."""
    completed = state.completed_rounds()
    if rounds is None:
        return sorted({INITIAL, *completed[-1:]})
    if not rounds:
        raise RoundError("no rounds to evaluate: give at least one (0 is the start)")
    unknown = sorted({r for r in rounds if r != INITIAL and r not in completed})
    if unknown:
        done = ", ".join(map(str, completed)) or "none"
        raise RoundError(f"{run_dir}: round(s) {unknown} are not completed (completed rounds: {done}; 0 is the start)")
    return sorted(set(rounds))


def _saved(run_dir: Path, r: int, members: Sequence[str]) -> bool:
    return all((_member_adapter(round_dir(run_dir, r), m) / ADAPTER_CONFIG).is_file() for m in members)


def adapter_round(run_dir: Path, r: int, members: Sequence[str]) -> int:
    """The round whose saved adapters hold the pool as it was after round ``r`` (0: the initial pool)."""
    for candidate in range(r, INITIAL, -1):
        if _saved(run_dir, candidate, members):
            return candidate
    return INITIAL


def adapter_dir(run_dir: Path, r: int, member: str) -> Path:
    return _member_adapter(round_dir(run_dir, r), member)
