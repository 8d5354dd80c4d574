"""A run killed with SIGKILL at several points resumes to exactly the result of an uninterrupted run."""

import subprocess
import sys
from pathlib import Path

import pytest

from sigkill import sigkill_when
from sparta.rundir import read_json, read_jsonl

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = [
    "run.rounds=2",
    "run.instructions_per_round=6",
    "pool.generation_batch_size=4",
    "judge.batch_size=1",  # many small judging chunks: a window wide enough to kill the run mid-judging
    "tournament.judges=all",
    "pool.sampling.max_new_tokens=12",
    "tournament.truncated=keep",  # 12 new tokens rarely end an answer: keep those pairs, so that members train
]
CUT_COUNTS = ("truncated_responses", "pairs_dropped_truncated", "pairs_kept_truncated")


def sparta_run(out: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "sparta.cli", "run", str(ROOT / "configs" / "tiny.yaml"), "--out", str(out)]
    for o in OVERRIDES:
        args += ["--set", o]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(out: Path) -> None:
    proc = sparta_run(out)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err


def kill_when(out: Path, relative: str, timeout: float = 300) -> None:
    """Start a run and SIGKILL it as soon as ``relative`` exists in its run directory."""
    sigkill_when(sparta_run(out), out / relative, timeout)


def result(out: Path) -> dict:
    state = read_json(out / "state.json")
    return {
        "ratings": state["reputation"]["ratings"],
        "updates": state["reputation"]["updates"],
        "pairs": [read_jsonl(out / f"round_{r:03d}" / "pairs.jsonl") for r in (1, 2)],
        "responses": [read_jsonl(out / f"round_{r:03d}" / "responses.jsonl") for r in (1, 2)],
        "judgments": [read_jsonl(out / f"round_{r:03d}" / "judgments.jsonl") for r in (1, 2)],
        "cut": [{k: read_json(out / f"round_{r:03d}" / "training.json")[k] for k in CUT_COUNTS} for r in (1, 2)],
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("whole") / "run"
    finish(out)
    whole = result(out)
    assert any(counts["pairs_kept_truncated"] for counts in whole["cut"])  # the counts compared below are not all 0
    return whole


@pytest.mark.parametrize(
    "kill_at",
    [
        "round_001/responses.partial.jsonl",  # in the middle of answering
        "round_001/judgments.partial.jsonl",  # in the middle of judging
        "round_001/adapters/careful/adapter_model.safetensors",  # between two members' training
        "round_002/responses.partial.jsonl",  # in round 2: the trained adapters must be restored
    ],
)
def test_resume_after_sigkill(tmp_path, uninterrupted, kill_at):
    out = tmp_path / "run"
    kill_when(out, kill_at)
    assert (out / "state.json").exists()
    finish(out)
    assert result(out) == uninterrupted
    # no stray partial files, no duplicated lines
    assert not list(out.rglob("*.partial.jsonl"))
    for r in (1, 2):
        lines = (out / f"round_{r:03d}" / "responses.jsonl").read_text().splitlines()
        assert len(lines) == len(set(lines))
