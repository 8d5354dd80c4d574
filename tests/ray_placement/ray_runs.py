"""What the Ray placement tests share: the tiny configuration, reading a run's results, and loopback-only runs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sparta.config import SpartaConfig, load_config
from sparta.rundir import (
    ADAPTER_WEIGHTS,
    JUDGMENTS,
    MATCHES,
    OUTCOMES,
    PAIRS,
    RATINGS,
    RESPONSES,
    STATE_JSON,
    adapter_dir,
    read_json,
    read_jsonl,
    round_dir,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"
ROUNDS = (1, 2)
MEMBERS = ("terse", "careful", "playful")
OVERRIDES = [
    "run.rounds=2",
    "run.instructions_per_round=6",
    "pool.generation_batch_size=4",  # 12 answers: 3 chunks of 4
    "judge.batch_size=2",  # 12 judgments: 6 chunks of 2
]
ON_RAY = ["backend.placement=ray", "ray.workers=2"]

INSIDE = "SPARTA_TESTS_LOOPBACK_ONLY"
"""Set in the environment of a test run that already has loopback as its only network."""


def tiny_config(*overrides: str) -> SpartaConfig:
    return load_config(TINY, [*OVERRIDES, *overrides])


def result(out: Path) -> dict:
    """Everything a run decides, by file: the final reputation and each round's records."""
    state = read_json(out / STATE_JSON)
    found = {"reputation": state["reputation"], "finished": state["finished"]}
    for round_index in ROUNDS:
        path = round_dir(out, round_index)
        for name in (MATCHES, RESPONSES, JUDGMENTS, OUTCOMES, PAIRS):
            found[f"{round_index}/{name}"] = read_jsonl(path / name)
        found[f"{round_index}/{RATINGS}"] = read_json(path / RATINGS)
    return found


def adapters(out: Path, rounds: Sequence[int] = ROUNDS) -> dict[tuple[int, str], dict]:
    from safetensors.torch import load_file

    return {
        (r, member): load_file(adapter_dir(round_dir(out, r), member) / ADAPTER_WEIGHTS)
        for r in rounds
        for member in MEMBERS
    }


def largest_difference(a: dict, b: dict) -> float:
    """The largest absolute difference between two runs' adapter weights (they must hold the same tensors)."""
    assert a.keys() == b.keys()
    worst = 0.0
    for key in a:
        assert a[key].keys() == b[key].keys()
        worst = max(worst, *((a[key][name] - b[key][name]).abs().max().item() for name in a[key]))
    return worst


def loopback_only(command: Sequence[str]) -> list[str] | None:
    """``command`` inside a new network namespace holding nothing but loopback, or None where this machine
    cannot make one (it takes root, util-linux ``unshare`` and iproute2 ``ip``)."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return None
    wrap = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    probe = subprocess.run([*wrap, "true"], capture_output=True)
    return [*wrap, *command] if probe.returncode == 0 else None


class RecordingReporter:
    """Adds up what every stage's progress bar was moved by."""

    def __init__(self) -> None:
        self.advanced: dict[str, int] = {}
        self.totals: dict[str, int] = {}
        self.on_advance: Callable[[str, int], None] = lambda stage, n: None

    @contextmanager
    def stage(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        self.totals[description] = total
        self.advanced.setdefault(description, 0)

        def advance(n: int) -> None:
            self.advanced[description] += n
            self.on_advance(description, n)

        yield advance

    def log(self, message: str) -> None:
        return None


def run_tiny(out: Path, *overrides: str, reporter=None, tribe=None) -> None:
    from sparta.pipeline.loop import run

    run(tiny_config(*overrides), out, reporter, tribe)
