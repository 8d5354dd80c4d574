"""Shared fixtures."""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_TASKS = Path(os.environ.get("SPARTA_TASKS_DIR", ROOT.parent / "shared" / "data" / "sparta-tasks"))
"""The SPARTA authors' instruction sets, kept beside the repository (never in it); see configs/smollm2.yaml."""


@pytest.fixture(scope="session", autouse=True)
def _test_run_model_cache(tmp_path_factory):
    """No test writes to the user's model cache: every test, and every process a test starts, builds models in a
    cache of this test run's own. A SmolLM2 the user has already built is linked in, to be read, never written, so
    the slow tests need no second download."""
    from sparta.provisioning.cache import cache_dir, is_valid
    from sparta.provisioning.smollm2 import SMOLLM2_RECIPE

    own = tmp_path_factory.mktemp("model-cache")
    built = cache_dir() / "smollm2-135m-instruct"
    if is_valid(built, SMOLLM2_RECIPE):
        (own / built.name).symlink_to(built.resolve(), target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(own))
        yield own


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A model cache of the test module's own, so tests never touch (or depend on) the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def varied_pairs():
    """``varied_pairs(n)``: n preference pairs whose prompts and answers all differ in length, so that every row of
    a DPO batch is padded differently."""
    from sparta.records import PreferencePair

    def pairs(n: int) -> list[PreferencePair]:
        return [
            PreferencePair(
                prompt=f"What is {i} + {i + 1}?" + " Explain why." * i,
                chosen=f"It is {2 * i + 1}." + " Because adding works so." * (n - 1 - i),
                rejected="Cat dog tree." * (i + 1),
                chosen_model="b",
                rejected_model="c",
                margin=1.0,
                instruction_id=f"q{i}",
            )
            for i in range(n)
        ]

    return pairs


@pytest.fixture
def shared_tasks() -> Path:
    """The directory of the authors' instruction sets. Missing, a test skips and says why; under ``CI=true`` a
    missing directory is a broken set-up and the test fails."""
    if SHARED_TASKS.is_dir():
        return SHARED_TASKS
    reason = (
        f"{SHARED_TASKS} is missing: the SPARTA authors' instruction sets (github.com/yurujiang2003/sparta, data/) "
        "are not beside the repository; set SPARTA_TASKS_DIR to their directory"
    )
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------- the vLLM engine

VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


@pytest.fixture(scope="session")
def vllm_python() -> str:
    """The interpreter of `make vllm`'s environment; its absence skips the vLLM tests, except under CI."""
    if not VLLM_PYTHON.is_file():
        message = f"{VLLM_PYTHON} is missing (make vllm creates it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must run the vLLM engine tests")
        pytest.skip(message)
    return str(VLLM_PYTHON)


@dataclass(frozen=True)
class VllmTestServer:
    url: str
    cache: Path
    """The model cache the server's tiny-llama was built in; tests point SPARTA_CACHE at it."""
    server: object


@pytest.fixture(scope="session")
def vllm_server(vllm_python, tmp_path_factory) -> Iterator[VllmTestServer]:
    """One real vLLM server (tiny-llama, fp32, LoRA on the attention projections) for every test that needs one."""
    from sparta.backends.hf.models import resolve_model
    from sparta.backends.vllm.server import LocalServer, ServerSpec, usable_cpus

    cache = tmp_path_factory.mktemp("vllm-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(cache))
        model = resolve_model("tiny-llama")
    spec = ServerSpec(
        python=vllm_python,
        model=str(model),
        served_name="sparta-base",
        dtype="float32",
        max_loras=4,
        max_lora_rank=8,
        lora_target_modules=("k_proj", "o_proj", "q_proj", "v_proj"),
        threads=usable_cpus(),
        kv_cache_gb=1.0,
        log_path=tmp_path_factory.mktemp("vllm-log") / "server.log",
        start_timeout=600,
    )
    server = LocalServer(spec)
    server.start()
    print(f"\nvLLM test server ready in {server.started_in:.0f} s at {server.url}")
    try:
        yield VllmTestServer(server.url, cache, server)
    finally:
        server.stop()


_AGREEMENT: list[str] = []


@pytest.fixture(scope="session")
def agreement_log() -> list[str]:
    """Lines (rates, largest differences) that the engine agreement tests report in the run's summary."""
    return _AGREEMENT


def pytest_terminal_summary(terminalreporter) -> None:
    if _AGREEMENT:
        terminalreporter.section("engine agreement (vLLM vs HF)")
        for line in _AGREEMENT:
            terminalreporter.write_line(line)
