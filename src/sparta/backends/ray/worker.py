"""One data-parallel worker: the whole HF tribe (every base model, every member's adapter) in a Ray actor.

A worker computes exactly what the local tribe computes for the same requests: the same pool built from the same
configuration and seeds, the same batching within a chunk, one torch thread per CPU it reserves. It never touches
the run directory: a trained adapter goes back to the driver as bytes, and adapters to load arrive as bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from sparta.config import SpartaConfig
from sparta.records import Instruction, JudgeRequest, Judgment, PreferencePair, Response
from sparta.rundir import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_dir


@dataclass(frozen=True)
class AdapterFiles:
    """A member's PEFT adapter as file name -> bytes (``adapter_config.json``, ``adapter_model.safetensors``)."""

    member: str
    files: dict[str, bytes]


@dataclass(frozen=True)
class TrainedMember:
    """What training one member sends back: its metrics and every file it wrote, by path relative to the round
    directory (the adapter, and ``report_to`` logs if any)."""

    member: str
    metrics: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerInfo:
    """Which worker, where: known once its ``setup`` returned."""

    index: int
    pid: int | None = None
    node: str | None = None
    device: str | None = None

    def describe(self) -> str:
        return f"{self.index} (pid {self.pid} on {self.node})" if self.pid is not None else f"{self.index}"


def _read_tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


class TribeWorker:
    """The Ray actor; ``setup`` loads the pool (a method, not ``__init__``, so its errors arrive as errors)."""

    def __init__(self, index: int, threads: int) -> None:
        self.index = index
        self.threads = threads
        self.tribe: Any = None
        self._finished = 0  # requests answered or judged since the worker started: the driver's progress bars

    def setup(self, config: SpartaConfig) -> WorkerInfo:
        import torch

        from sparta.backends.hf.tribe import HFTribe

        torch.set_num_threads(self.threads)
        if ray.get_gpu_ids():  # Ray made this worker's GPU(s) the only visible ones
            config = config.model_copy(update={"pool": config.pool.model_copy(update={"device": "cuda:0"})})
        self.tribe = HFTribe(config)
        return WorkerInfo(
            index=self.index, pid=os.getpid(), node=ray.util.get_node_ip_address(), device=config.pool.device
        )

    def _advance(self, count: int) -> None:
        self._finished += count

    @ray.method(concurrency_group="progress")
    def progress(self) -> int:
        """Requests finished so far; answered while a long call runs (its own concurrency group)."""
        return self._finished

    def generate(self, requests: Sequence[tuple[str, Instruction]], seed: int) -> list[Response]:
        return self.tribe.generate(requests, seed, self._advance)

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        return self.tribe.judge(requests, self._advance)

    def train_member(
        self, member: str, pairs: Sequence[PreferencePair], seed: int, judged: Mapping[str, float]
    ) -> TrainedMember:
        """Train ``member`` as the local tribe would and send back what it saved, leaving nothing on this node.
        ``judged``: the reference log-probabilities its judging wrote to the round's judgments (read by the driver)."""
        with tempfile.TemporaryDirectory(prefix="sparta-worker-") as scratch:
            metrics = self.tribe.train_one(member, pairs, Path(scratch), seed, judged)
            return TrainedMember(member, metrics, _read_tree(Path(scratch)))

    def load_adapters(self, *adapters: AdapterFiles) -> int:
        """Give each named member the adapter sent as bytes; returns how many were loaded."""
        with tempfile.TemporaryDirectory(prefix="sparta-worker-") as scratch:
            for adapter in adapters:
                directory = adapter_dir(Path(scratch), adapter.member)
                directory.mkdir(parents=True)
                for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
                    (directory / name).write_bytes(adapter.files[name])
                self.tribe.pool.load_adapter(adapter.member, directory)
        return len(adapters)

    def apply(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(tribe, *args)`` on this worker's tribe: for extensions and for checking what a worker holds."""
        return function(self.tribe, *args)


REMOTE_WORKER = ray.remote(concurrency_groups={"progress": 1})(TribeWorker)
"""The actor class; its default group runs one call at a time, so calls on the shared pool never overlap."""
