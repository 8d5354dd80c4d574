"""A ray run survives its driver's SIGKILL and a worker's death: the run directory keeps what finished, and a
resumed run ends exactly where a local run ends."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ray_runs import ON_RAY, OVERRIDES, TINY, RecordingReporter, adapters, largest_difference, result, tiny_config

from sigkill import sigkill_when

ray = pytest.importorskip("ray")

from sparta.errors import SpartaError  # noqa: E402
from sparta.rundir import JUDGMENTS, STATE_JSON, TRAINING, partial_path, read_json, read_jsonl, round_dir  # noqa: E402


def sparta_run(out: Path, address: str) -> subprocess.Popen:
    """``sparta run`` on the tiny configuration, as a driver joining this session's cluster."""
    args = [sys.executable, "-m", "sparta.cli", "run", str(TINY), "--out", str(out)]
    for override in [*OVERRIDES, *ON_RAY, f"ray.address={address}"]:
        args += ["--set", override]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(out: Path, address: str, relative: str, timeout: float = 600) -> None:
    """Start a run and SIGKILL its driver as soon as ``relative`` exists in the run directory."""
    sigkill_when(sparta_run(out, address), out / relative, timeout)


def test_driver_killed_mid_training_resumes_to_the_local_result(tmp_path, ray_cluster, local_run):
    address = ray.get_runtime_context().gcs_address
    out = tmp_path / "run"
    training_checkpoint = partial_path(round_dir(out, 1) / TRAINING)
    kill_when(out, address, str(training_checkpoint.relative_to(out)))  # between two members' training
    trained_before = {row["member"]: row["metrics"] for row in read_jsonl(training_checkpoint)}
    assert trained_before
    proc = sparta_run(out, address)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err

    local_out, _ = local_run
    assert result(out) == result(local_out)
    assert largest_difference(adapters(out), adapters(local_out)) <= 1e-6
    trained = read_json(round_dir(out, 1) / TRAINING)["members"]
    for member, metrics in trained_before.items():  # trained once, before the kill, and not again
        assert trained[member] == metrics
    assert not list(out.rglob("*.partial.jsonl"))


def test_a_worker_killed_mid_stage_is_a_clear_error_and_the_run_resumes(tmp_path, local_run, ray_run):
    from sparta.backends.ray.tribe import RayTribe
    from sparta.backends.ray.workers import WorkerLostError
    from sparta.pipeline.loop import run

    config, out = tiny_config(*ON_RAY), tmp_path / "run"
    tribe = RayTribe(config)
    victim = tribe.workers.infos[1].pid
    reporter, killed = RecordingReporter(), []

    def kill_worker_once(stage: str, _: int) -> None:
        if stage == "round 2: judging" and not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(stage)

    reporter.on_advance = kill_worker_once
    try:
        with pytest.raises(WorkerLostError) as caught:
            run(config, out, reporter, tribe)
    finally:
        tribe.close()
    assert isinstance(caught.value, SpartaError)  # the command line prints it and exits with status 2
    message = str(caught.value)
    assert f"ray worker 1 (pid {victim} on 127.0.0.1) died while judging" in message and "--resume" in message

    local_out, _ = local_run
    finished = read_json(out / STATE_JSON)["finished"]
    assert finished["2"] == ["matches", "responses"] and len(finished["1"]) == 5
    kept = read_jsonl(partial_path(round_dir(out, 2) / JUDGMENTS))  # chunks finished before the death
    assert 2 <= len(kept) and len(kept) % 2 == 0
    assert kept == read_jsonl(round_dir(local_out, 2) / JUDGMENTS)[: len(kept)]

    _, _, other_workers = ray_run  # resumed on other workers: they get round 1's adapters from the driver
    run(config, out, tribe=other_workers)
    assert result(out) == result(local_out)
    assert largest_difference(adapters(out), adapters(local_out)) <= 1e-6
