"""How many CPU threads torch uses and how its idle threads wait: chosen from the CPUs this process may use.

torch runs its CPU kernels on an OpenMP pool, one thread per core by default, and an idle OpenMP thread spins
(busy-waits) before it sleeps: GNU OpenMP (the runtime of the PyPI torch wheels) for 300,000 spins. Beside another
CPU-bound process that is a disaster: a spinning thread holds a core that the thread everybody waits for needs,
and every parallel region waits for the slowest thread. Measured on 2 cores beside another torch job: judging
10-30x slower instead of the 2x fair sharing costs. Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) is no better
alone: every parallel region then wakes its threads through the kernel, about 200 us in a virtual machine whose
idle CPUs halt, and a decoding step or a reference pass runs thousands of small regions.
So, before torch starts its thread pool:

- threads: the CPUs this process may run on (``os.sched_getaffinity``), further limited by a cgroup CPU quota
  (containers: ``cpu.max`` or ``cpu.cfs_quota_us``), at least 1;
- a short spin: ``GOMP_SPINCOUNT=1000`` (GNU OpenMP: a few microseconds, enough to bridge back-to-back kernels,
  then sleep); ``KMP_BLOCKTIME=0`` (Intel and LLVM OpenMP, whose finest non-zero setting is a millisecond: sleep);
  ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` carry the thread count. Measured on 2 cores
  (``benchmarks/wait_policy.py``: 4 members answering in one batch), tok/s quiet / beside a busy process:
  passive 41.7 / 37.6, 1000 spins 43.9 / 33.5, 3000 spins 56.9 / 26.7, 10000 spins 58.5 / 17.1. Longer spins buy
  quiet speed with a slowdown beside a neighbour that grows to 3.4x; 1000 is a little faster than sleeping at once
  quiet, and sharing costs 1.3x. Where small kernels dominate the gain is larger: the DPO reference passes of four
  members took 68 s passive and 51 s with 1000 spins (two runs of benchmarks/round_cost.py).

OpenMP reads these variables once, when torch is first imported; ``sparta``'s command line sets them before that.
A variable the user has set is never changed (an ``OMP_WAIT_POLICY`` of theirs overrides the spin count). Library
users set them in the environment themselves (README).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

WAIT_POLICY = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "0"}
"""Idle threads spin briefly, then sleep: GNU OpenMP's spin count, then Intel/LLVM OpenMP's block time (ms)."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class ThreadPlan:
    threads: int
    why: str
    wait_policy: str
    """``OMP_WAIT_POLICY`` when set, else the GNU OpenMP spin count (``spin 1000``)."""
    torch_started: bool
    """True when torch was imported before the plan: its thread pool already read the environment."""

    def describe(self) -> str:
        late = "; torch had already started, so its wait policy is its own" if self.torch_started else ""
        return f"{self.threads} torch thread(s) ({self.why}), OpenMP wait: {self.wait_policy}{late}"


def _own_cgroup(proc_cgroup: Path, controller: str) -> str | None:
    """This process's cgroup path for ``controller`` ("" for the unified v2 hierarchy), from /proc/self/cgroup."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


def _cgroup_v2_limit(root: Path, proc_cgroup: Path) -> float | None:
    """The tightest ``cpu.max`` quota (CPUs) from this process's cgroup up to the root, or None."""
    relative = _own_cgroup(proc_cgroup, "")
    if relative is None:
        return None
    limits = []
    directory = root / relative.lstrip("/")
    for folder in [directory, *directory.parents]:
        if not folder.is_relative_to(root):
            break
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max":
            limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def _cgroup_v1_limit(root: Path, proc_cgroup: Path) -> float | None:
    relative = _own_cgroup(proc_cgroup, "cpu")
    folder = root / "cpu" / (relative or "/").lstrip("/")
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(
    root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (1.5 = one and a half), or None when unlimited."""
    limit = _cgroup_v2_limit(root, proc_cgroup)
    return limit if limit is not None else _cgroup_v1_limit(root, proc_cgroup)


def usable_cpus(affinity: set[int] | None = None, quota: float | None = None) -> tuple[int, str]:
    """(CPUs this process may keep busy, why): its CPU affinity, floored to a cgroup quota, at least 1."""
    allowed = affinity if affinity is not None else set(os.sched_getaffinity(0))
    count, why = len(allowed), f"{len(allowed)} CPUs in this process's affinity"
    if quota is not None and math.floor(quota) < count:
        count, why = max(1, math.floor(quota)), f"cgroup CPU quota {quota:g}"
    return count, why


def prepare_cpu_threads(environ: MutableMapping[str, str] = os.environ) -> ThreadPlan:
    """Set the thread count and the wait policy in ``environ`` (unless the user did), and in torch if it has
    started already; call it before anything imports torch."""
    torch_started = "torch" in sys.modules
    if environ.get("OMP_NUM_THREADS", "").isdigit() and int(environ["OMP_NUM_THREADS"]) > 0:
        threads, why = int(environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    else:
        threads, why = usable_cpus(quota=cgroup_cpu_limit())
    for name in THREAD_VARIABLES:
        environ.setdefault(name, str(threads))
    for name, value in WAIT_POLICY.items():
        environ.setdefault(name, value)
    if torch_started:
        import torch

        torch.set_num_threads(threads)
    policy = environ.get("OMP_WAIT_POLICY") or f"spin {environ['GOMP_SPINCOUNT']}"
    return ThreadPlan(threads, why, policy, torch_started)
