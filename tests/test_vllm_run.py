"""A full configs/tiny.yaml run on the vLLM engine: killed with SIGKILL mid-judging, resumed, compared with HF.

The killed run starts its own server (the real path: .venv-vllm, a free port, the log in the run directory); the
kill must take that server down with it. The resumed run continues on the session's shared server (the vllm
section may change between resumes: every request carries its own seed). Members answer greedily so that the
two engines are comparable: the pairs of both rounds must agree with the HF engine's run for >= 95% of them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sigkill import sigkill_when
from sparta.backends.vllm.server import healthy
from sparta.config import load_config
from sparta.pipeline.loop import run
from sparta.rundir import ENGINE_DIR, INITIAL_ADAPTERS, PAIRS, SERVER_LOG, read_jsonl, round_dir

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = 0.95
KILL_AT = Path("round_001") / "judgments.partial.jsonl"


def _greedy_config(tmp_path: Path) -> Path:
    """configs/tiny.yaml with greedy members and many small judging chunks (a wide window for the kill)."""
    tiny = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    members = [{**m, "sampling": {"temperature": 0.0, "max_new_tokens": 16}} for m in tiny["pool"]["members"]]
    overlay = {
        "extends": str(ROOT / "configs" / "tiny.yaml"),
        "run": {"instructions_per_round": 6},
        "tournament": {"truncated": "keep"},  # 16 greedy tokens rarely end a random model's answer: keep those pairs
        "pool": {"members": members},
        "judge": {"batch_size": 1},
    }
    path = tmp_path / "greedy.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def _kill_mid_judging(config: Path, out: Path, env: dict[str, str], timeout: float = 900) -> None:
    args = [sys.executable, "-m", "sparta.cli", "run", str(config), "--out", str(out), "--set", "pool.engine=vllm"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sigkill_when(proc, out / KILL_AT, timeout)


def _server_url(log: Path) -> str:
    port = re.search(r"--port (\d+)", log.read_text()).group(1)
    return f"http://127.0.0.1:{port}"


def _live_members(pgid: int) -> list[int]:
    """Processes of the group that are still running (zombies waiting to be reaped do not count)."""
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def _group_gone(pgid: int, timeout: float = 60) -> bool:
    """True once no process of the group (the server and its engine process) is left running."""
    deadline = time.monotonic() + timeout
    while _live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    return not _live_members(pgid)


def _pair_keys(out: Path) -> list[tuple]:
    return [
        (r, p["instruction_id"], p["chosen_model"], p["rejected_model"], p["chosen"], p["rejected"])
        for r in (1, 2)
        for p in read_jsonl(round_dir(out, r) / PAIRS)
    ]


def test_a_killed_vllm_run_resumes_and_its_pairs_agree_with_hf(vllm_server, tmp_path, monkeypatch, agreement_log):
    monkeypatch.setenv("SPARTA_CACHE", str(vllm_server.cache))
    config = _greedy_config(tmp_path)
    hf_out, vllm_out = tmp_path / "hf", tmp_path / "vllm"
    run(load_config(config), hf_out)

    _kill_mid_judging(config, vllm_out, {**os.environ, "SPARTA_CACHE": str(vllm_server.cache)})
    log = vllm_out / ENGINE_DIR / SERVER_LOG
    url = _server_url(log)
    deadline = time.monotonic() + 60
    while healthy(url, timeout=1.0) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not healthy(url, timeout=1.0), f"the server of the killed run still answers at {url}"
    assert _group_gone(int(re.search(r"process group (\d+)", log.read_text()).group(1)))
    assert sorted(p.name for p in (vllm_out / ENGINE_DIR / INITIAL_ADAPTERS).iterdir()) == sorted(
        ["terse", "careful", "playful"]
    )

    resumed = load_config(config, ["pool.engine=vllm", f"vllm.urls=[{vllm_server.url}]"])
    _, stats = run(resumed, vllm_out)
    assert [s.round for s in stats] == [1, 2] and all(s.judge_failures == 0 for s in stats)
    assert not (vllm_out / KILL_AT).exists()

    hf_pairs, vllm_pairs = _pair_keys(hf_out), _pair_keys(vllm_out)
    assert hf_pairs, "the HF run made no pairs: nothing to compare"
    shared = len(set(hf_pairs) & set(vllm_pairs))
    rate = shared / max(len(hf_pairs), len(vllm_pairs))
    agreement_log.append(
        f"configs/tiny.yaml, greedy, killed + resumed on vLLM vs HF: {rate:.1%} identical pairs "
        f"({shared} of {len(hf_pairs)} HF / {len(vllm_pairs)} vLLM)"
    )
    assert rate >= AGREEMENT
