"""Killing a run at a chosen point: SIGKILL as soon as a file appears in its run directory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest


def sigkill_when(proc: subprocess.Popen, path: Path, timeout: float) -> None:
    """SIGKILL ``proc`` as soon as ``path`` exists; the test fails if the process ends first or ``timeout`` passes.

    ``proc`` must have been started with ``stderr=subprocess.PIPE``: its end is quoted in the failure.
    """
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {path} appeared: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"{path} did not appear in {timeout} s")
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
