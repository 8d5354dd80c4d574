"""One private Ray cluster for the whole test session, and the local and ray runs several tests compare.

Where the machine allows it (root, ``unshare``), these tests run in a network namespace with nothing but
loopback: ``test_loopback_only.py`` starts that run and the tests collected here in the outer session are skipped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray_runs import INSIDE, ON_RAY, RecordingReporter, loopback_only, run_tiny, tiny_config


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    ours = [item for item in items if here in item.path.parents]
    wrapper_collected = any(item.path.name == "test_loopback_only.py" for item in ours)
    if os.environ.get(INSIDE) or not wrapper_collected or loopback_only(["true"]) is None:
        return
    skip = pytest.mark.skip(reason="runs with loopback as the only network, inside test_loopback_only.py")
    for item in ours:
        if item.path.name != "test_loopback_only.py":
            item.add_marker(skip)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Iterator[Path]:
    """The session's model cache: the workers inherit it when the cluster starts."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def ray_cluster(model_cache) -> Iterator[tuple[object, str]]:
    """The session's one cluster, started as a private run starts it; with the driver's stderr while it started."""
    pytest.importorskip("ray")
    from sparta.backends.ray.cluster import start_private

    with tempfile.TemporaryFile() as stderr_copy:
        saved = os.dup(2)
        os.dup2(stderr_copy.fileno(), 2)  # Ray's C++ warnings are written to the file descriptor, not sys.stderr
        try:
            cluster = start_private(cpus=4, gpus=0, object_store_mb=256)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        stderr_copy.seek(0)
        startup_log = stderr_copy.read().decode(errors="replace")
    yield cluster, startup_log
    cluster.close()


@pytest.fixture(scope="session")
def one_thread() -> Iterator[None]:
    """Local runs in this process compute with one torch thread, as every worker does."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def local_run(tmp_path_factory, model_cache, one_thread) -> tuple[Path, RecordingReporter]:
    out, reporter = tmp_path_factory.mktemp("local") / "run", RecordingReporter()
    run_tiny(out, reporter=reporter)
    return out, reporter


@pytest.fixture(scope="session")
def ray_run(tmp_path_factory, ray_cluster) -> Iterator[tuple[Path, RecordingReporter, object]]:
    """A ray run on 2 workers, and its tribe, kept for the session: starting workers is the slow part of these
    tests. A test that uses the tribe afterwards restores a round first (``load_round`` sets every adapter)."""
    from sparta.backends.ray.tribe import RayTribe

    tribe = RayTribe(tiny_config(*ON_RAY))
    out, reporter = tmp_path_factory.mktemp("ray") / "run", RecordingReporter()
    run_tiny(out, *ON_RAY, reporter=reporter, tribe=tribe)
    yield out, reporter, tribe
    tribe.close()
