"""Demo rounds in fresh processes, alone or beside another CPU-bound process (the neighbour), old path and new.

Each round runs in a child (demo_round.py) with the thread variables removed from its environment, so the old
path starts torch as it always did (one thread per core, spinning) and the new one as the ``sparta`` command
does. The neighbour is started before the child and killed after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NEIGHBOURS = {
    "busy": "while True:\n    pass",
    "torch": "import torch\na = torch.randn(1024, 1024)\nwhile True:\n    a @ a",
}
"""A one-thread busy loop, or a second torch job with torch's defaults (a thread per core, spinning)."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
HERE = Path(__file__).resolve().parent


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}


@contextmanager
def neighbour(kind: str | None) -> Iterator[None]:
    """Run the named CPU-bound neighbour for the duration of the block (nothing for None)."""
    if kind is None:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", NEIGHBOURS[kind]], env=_clean_env())
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def demo_round(path: str, model: str | None, instructions: int | None, beside: str | None = None) -> dict:
    """One demo round in a child process (``path``: old or new), optionally beside a neighbour."""
    with tempfile.TemporaryDirectory(prefix=f"round-{path}-") as tmp:
        cmd = [sys.executable, str(HERE / "demo_round.py"), path, str(Path(tmp) / "run")]
        if model:
            cmd += ["--model", model]
        if instructions:
            cmd += ["--instructions", str(instructions)]
        with neighbour(beside):
            done = subprocess.run(cmd, env=_clean_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"demo round ({path}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["beside"] = beside
    return result


def outside_steps_share(training: dict) -> float | None:
    """Mean share of a member's DPO time spent outside optimizer steps: 1 - steps x seconds_per_step / seconds."""
    shares = [
        1 - m["steps"] * m["seconds_per_step"] / m["seconds"]
        for m in training.get("members", {}).values()
        if m.get("steps") and m.get("seconds")
    ]
    return sum(shares) / len(shares) if shares else None
