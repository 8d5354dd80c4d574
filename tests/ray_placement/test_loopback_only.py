"""The Ray tests of this directory, run where loopback is the only network (a new network namespace).

A packet meant for any other address then fails at once instead of leaving the machine, so these tests also
show that a private cluster and every run on it need nothing beyond loopback.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ray_runs import INSIDE, loopback_only

pytest.importorskip("ray")


def test_ray_tests_pass_with_loopback_as_the_only_network():
    if os.environ.get(INSIDE):
        pytest.skip("this run already has loopback as its only network")
    here = Path(__file__).parent
    command = loopback_only([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", str(here)])
    if command is None:
        pytest.skip("no network namespace can be made here (root and unshare needed); the Ray tests ran directly")
    proc = subprocess.run(command, env={**os.environ, INSIDE: "1"}, capture_output=True, text=True, timeout=1800)
    summary = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    print("loopback-only run of the Ray tests:", *summary)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
