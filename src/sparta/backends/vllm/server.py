"""A vLLM OpenAI-compatible server that sparta starts, health-checks and always stops.

Process hygiene, because a server holds gigabytes and a port:
- it runs ``python -m vllm.entrypoints.openai.api_server`` from the configured environment (the ``vllm serve``
  entry point of the CPU build fails with ``PackageNotFoundError: vllm``), bound to 127.0.0.1 on a free port, with
  ``HF_HUB_OFFLINE=1`` and usage statistics off; its output goes to a log file in the run directory;
- it leads a process group of its own, so stopping it stops its engine process too (SIGTERM, then SIGKILL);
- it is stopped when sparta exits normally (``atexit``) or on an error, and receives SIGTERM from the kernel
  when the sparta process dies in any other way, even by SIGKILL (Linux parent-death signal);
- ``--distributed-executor-backend uni`` keeps the model in the engine process: one vLLM import fewer to wait
  for (about 20-40 s on 2 CPU cores) and one process fewer to clean up.

Threads: while the server computes, sparta waits on HTTP, and while sparta trains, the server idles; so both
get every CPU this process may use unless ``vllm.threads`` says otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sparta.backends.vllm.errors import ServerStartError

VENV_PYTHON = Path(".venv-vllm") / "bin" / "python"
"""Where ``make vllm`` puts the server's interpreter, relative to the project (or the current directory)."""

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 25


def default_python() -> str:
    """``.venv-vllm/bin/python`` in the current directory or this checkout, else the running interpreter."""
    checkout = Path(__file__).resolve().parents[4]
    for candidate in (Path.cwd() / VENV_PYTHON, checkout / VENV_PYTHON):
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ServerSpec:
    """Everything a started server is told: the base model, LoRA limits, precision, threads and memory."""

    python: str
    model: str
    served_name: str
    dtype: str
    max_loras: int
    max_lora_rank: int
    lora_target_modules: tuple[str, ...]
    threads: int
    kv_cache_gb: float
    log_path: Path
    max_model_len: int | None = None
    extra_args: tuple[str, ...] = ()
    start_timeout: float = 900.0
    seed: int = 0
    environment: dict[str, str] = field(default_factory=dict)

    def command(self, port: int) -> list[str]:
        args = [self.python, "-m", "vllm.entrypoints.openai.api_server"]
        args += ["--host", "127.0.0.1", "--port", str(port), "--model", self.model]
        args += ["--served-model-name", self.served_name, "--dtype", self.dtype, "--seed", str(self.seed)]
        args += ["--enable-lora", "--max-loras", str(self.max_loras), "--max-lora-rank", str(self.max_lora_rank)]
        args += ["--max-cpu-loras", str(2 * self.max_loras)]  # this round's adapters and the previous round's
        args += ["--lora-target-modules", *self.lora_target_modules]
        args += ["--distributed-executor-backend", "uni", "--disable-uvicorn-access-log"]
        if self.max_model_len is not None:
            args += ["--max-model-len", str(self.max_model_len)]
        return args + list(self.extra_args)

    def env(self) -> dict[str, str]:
        threads = str(self.threads)
        return {
            **os.environ,
            "OMP_NUM_THREADS": threads,
            "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            "VLLM_CPU_KVCACHE_SPACE": f"{self.kv_cache_gb:g}",
            "VLLM_HOST_IP": "127.0.0.1",
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **self.environment,
        }


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in lines[-_LOG_TAIL_LINES:])


def healthy(url: str, timeout: float = 5.0) -> bool:
    """True when ``url/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


class LocalServer:
    """One started server: ``start()`` returns once it is healthy, ``stop()`` (also at exit) ends its group."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.started_in: float | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the server and wait until it is healthy; its URL."""
        spec = self.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        began = time.monotonic()
        with spec.log_path.open("ab") as log:
            log.write(f"$ {' '.join(spec.command(self.port))}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    spec.command(self.port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=spec.env(),
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as err:
                raise ServerStartError(f"cannot start the vLLM server with {spec.python}: {err}") from None
            log.write(f"process group {self.process.pid}\n".encode())
            log.flush()
        atexit.register(self.stop)
        try:
            self._wait_healthy(began)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self.url

    def _wait_healthy(self, began: float) -> None:
        spec = self.spec
        while not healthy(self.url, timeout=2.0):
            code = self.process.poll() if self.process else None
            if code is not None:
                raise ServerStartError(
                    f"the vLLM server for {spec.model} exited with status {code} while starting "
                    f"(python {spec.python}; log {spec.log_path}):\n{_log_tail(spec.log_path)}"
                )
            if time.monotonic() - began > spec.start_timeout:
                raise ServerStartError(
                    f"the vLLM server at {self.url} was not healthy after {spec.start_timeout:g} s "
                    f"(vllm.start_timeout; log {spec.log_path}):\n{_log_tail(spec.log_path)}"
                )
            time.sleep(1.0)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``grace`` seconds; safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            self._signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(process.pid, signal.SIGKILL)  # stragglers of the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)

    def group_rss_bytes(self) -> int:
        """Resident memory of every process in the server's group (the API server and its engine)."""
        if self.process is None:
            return 0
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) != self.process.pid:
                    continue
                status = (entry / "status").read_text()
            except (OSError, ProcessLookupError):
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total
