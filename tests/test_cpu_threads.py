"""Thread count from the CPUs this process may use; idle OpenMP threads that spin briefly; the user's settings kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sparta.cpu_threads import cgroup_cpu_limit, prepare_cpu_threads, usable_cpus

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env(**extra: str) -> dict[str, str]:
    variables = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    env = {k: v for k, v in os.environ.items() if k not in variables}
    return {**env, "PYTHONPATH": SRC, **extra}


def test_usable_cpus_follow_affinity_and_quota():
    assert usable_cpus({0, 1, 2, 3}, None) == (4, "4 CPUs in this process's affinity")
    assert usable_cpus({0, 1, 2, 3}, 2.5) == (2, "cgroup CPU quota 2.5")
    assert usable_cpus({0, 1}, 8.0)[0] == 2
    assert usable_cpus({0, 1}, 0.5)[0] == 1


def test_cgroup_quotas_v2_hierarchy_and_v1(tmp_path):
    root = tmp_path / "cgroup"
    leaf = root / "jobs" / "mine"
    leaf.mkdir(parents=True)
    (root / "jobs" / "cpu.max").write_text("150000 100000\n")
    (leaf / "cpu.max").write_text("max 100000\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/jobs/mine\n")
    assert cgroup_cpu_limit(root, proc) == 1.5  # the parent's quota binds the child
    (leaf / "cpu.max").write_text("50000 100000\n")
    assert cgroup_cpu_limit(root, proc) == 0.5
    v1 = tmp_path / "v1"
    (v1 / "cpu" / "box").mkdir(parents=True)
    (v1 / "cpu" / "box" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "box" / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("3:cpu,cpuacct:/box\n0::/\n")
    assert cgroup_cpu_limit(v1, proc) == 3.0
    (v1 / "cpu" / "box" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(v1, proc) is None


def test_user_settings_are_kept_and_defaults_filled():
    environ = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    plan = prepare_cpu_threads(environ)
    assert (plan.threads, plan.why, plan.wait_policy) == (3, "OMP_NUM_THREADS", "ACTIVE")
    assert environ == {
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": "3",
        "OMP_WAIT_POLICY": "ACTIVE",
        "GOMP_SPINCOUNT": "1000",
        "KMP_BLOCKTIME": "0",
    }
    fresh: dict[str, str] = {}
    plan = prepare_cpu_threads(fresh)
    assert "OMP_WAIT_POLICY" not in fresh and fresh["GOMP_SPINCOUNT"] == "1000"
    assert fresh["OMP_NUM_THREADS"] == str(plan.threads) and plan.wait_policy == "spin 1000"
    assert plan.threads == min(len(os.sched_getaffinity(0)), plan.threads) >= 1


def test_torch_started_after_the_plan_uses_its_threads_and_policy():
    """A process pinned to one CPU gets one torch thread, and OpenMP itself reports the short spin."""
    code = (
        "import os, json; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from sparta.cpu_threads import prepare_cpu_threads; plan = prepare_cpu_threads();"
        "import torch; torch.ones(8).sum(); print(json.dumps([torch.get_num_threads(), plan.torch_started]))"
    )
    env = _env(OMP_DISPLAY_ENV="VERBOSE")  # the OpenMP runtime prints the settings it started with
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [1, False]
    assert "GOMP_SPINCOUNT = '1000'" in out.stderr + out.stdout and "OMP_NUM_THREADS = '1'" in out.stderr + out.stdout


def test_the_command_line_prepares_threads_before_any_command(tmp_path):
    code = (
        "import os, sys; sys.argv = ['sparta', 'simulate', '--models', '3', '--rounds', '1', '--instructions', '6',"
        f" '--out', {str(tmp_path / 'sim')!r}]\n"
        "from sparta.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_NUM_THREADS'))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == f"1000 {len(os.sched_getaffinity(0))}"
