"""The Ray cluster of a run: joined, or started privately on this machine with loopback as its only network.

``ray.address`` decides:

- none, and this process already called ``ray.init``: that cluster, left running at the end;
- none otherwise: a private cluster on 127.0.0.1 (``ray.workers`` x ``cpus_per_worker`` CPUs, as many logical
  GPUs as the workers reserve), shut down at the end;
- ``"auto"`` or ``HOST:PORT``: an existing cluster (``ray start``), left running at the end.

A plain local ``ray.init()`` sends packets beyond loopback: its dashboard process probes cloud metadata servers
unless ``~/ray_bootstrap_config.yaml`` exists, node-IP discovery opens a socket towards a public DNS server unless
the node IP is given, and usage statistics are reported. The private cluster gives the node IP, turns usage
statistics off and runs Ray's processes with a HOME of its own that holds an empty bootstrap file; the model
caches stay where they were. Its logs go to a temporary directory, removed at the end unless a worker died.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sparta.config import RayConfig

LOOPBACK = "127.0.0.1"


@dataclass
class Cluster:
    """A connection to a Ray cluster; ``owned`` when this process started it and must shut it down."""

    owned: bool
    connected_here: bool
    temp_root: Path | None = None
    keep_logs: bool = False

    @property
    def log_dir(self) -> str:
        """Where the workers' logs are (on the head node for a cluster this process did not start)."""
        if self.temp_root is not None:
            return str(self.temp_root / "ray" / "session_latest" / "logs")
        return "the cluster's session_latest/logs directory (/tmp/ray by default)"

    def close(self) -> None:
        """Disconnect; a private cluster is shut down and its temporary files go unless ``keep_logs``."""
        import ray

        if self.connected_here and ray.is_initialized():
            ray.shutdown()
        self.connected_here = False
        if self.owned and self.temp_root is not None and not self.keep_logs:
            shutil.rmtree(self.temp_root, ignore_errors=True)


def connect(config: RayConfig) -> Cluster:
    """The cluster ``config.address`` names (see the module docstring)."""
    import ray

    if config.address is None:
        if ray.is_initialized():
            return Cluster(owned=False, connected_here=False)
        return start_private(
            cpus=config.workers * config.cpus_per_worker,
            gpus=config.workers * config.gpus_per_worker,
            object_store_mb=config.object_store_mb,
        )
    if config.address.rpartition(":")[0] in (LOOPBACK, "localhost"):  # a cluster on this machine's loopback
        with _loopback_node_ip():
            ray.init(address=config.address, _node_ip_address=LOOPBACK)
    else:
        ray.init(address=config.address)
    return Cluster(owned=False, connected_here=True)


def start_private(cpus: float, gpus: float, object_store_mb: int, root: Path | None = None) -> Cluster:
    """Start a Ray cluster on 127.0.0.1 whose processes never open a connection beyond loopback.

    ``root`` holds Ray's HOME and logs (default: a new temporary directory, kept short because Ray's Unix
    sockets live under it). GPUs are logical: Ray hands them out to workers even where there is no device.
    """
    import ray

    root = Path(root or tempfile.mkdtemp(prefix="sparta-ray-"))
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text("{}\n")  # stops the dashboard's cloud metadata probes
    os.environ.update(_private_environment())  # Ray reads these at any time, in this process too
    with _home(home), _loopback_node_ip():
        ray.init(
            num_cpus=cpus,
            num_gpus=gpus,
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            _temp_dir=str(root / "ray"),
            object_store_memory=object_store_mb * 2**20,
            logging_level=logging.WARNING,  # no "started a local Ray instance" between the progress bars
        )
    return Cluster(owned=True, connected_here=True, temp_root=root)


def _private_environment() -> dict[str, str]:
    """Usage statistics off, node IP on loopback, no auth token, and the model caches pinned to where they are
    now, so that Ray's processes (and through them the workers) find them under a HOME of their own."""
    from sparta.backends.hf.models import cache_dir

    caches = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return {
        "SPARTA_CACHE": str(cache_dir()),
        "XDG_CACHE_HOME": str(caches),
        "HF_HOME": os.environ.get("HF_HOME") or str(caches / "huggingface"),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_USAGE_STATS_REPORT_URL": f"http://{LOOPBACK}:9/",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # the node IP falls back to 127.0.0.1
        "RAY_AUTH_MODE": "disabled",  # no ~/.ray/auth_token
    }


@contextmanager
def _loopback_node_ip() -> Iterator[None]:
    """Ray resolves even a given 127.0.0.1 through a probe towards a public DNS server unless
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is 0, which Ray reads once, when this process first imports it; this gives
    the variable's effect to a process that imported Ray before setting it."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


@contextmanager
def _home(home: Path) -> Iterator[None]:
    """HOME for the processes started inside (Ray's own files stay out of the real home); this process gets its
    own back after."""
    before = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = before
