"""Training on Ray workers: every member trained on some worker, its adapter written by the driver, then loaded
by every worker.

1. The round's pairs go into the object store once. Members go to the first free worker, in pool order (more
   members than workers: a queue). Each trains exactly as in a local run (``HFTribe.train_one``: same pool state
   at the start of the round, same seed), so where a member trains never changes its adapter.
2. A trained member's files come back as bytes; the driver writes them into the round directory atomically, then
   records the member in ``training.partial.jsonl``. A resumed round does not train a recorded member again.
3. When every member is trained, every worker loads every member's new adapter (sent as bytes, no shared disk).

:class:`RayLearner` can be used alone, by an engine that answers and judges elsewhere (the vLLM engine with
``backend.placement: ray``) and delegates training; ``build`` is its factory in ``LEARNERS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from sparta.backends.base import Progress, _no_progress
from sparta.backends.hf.answer_logps import round_references
from sparta.backends.ray.cluster import Cluster, connect
from sparta.backends.ray.worker import AdapterFiles, TrainedMember
from sparta.backends.ray.workers import WorkerGroup
from sparta.config import SpartaConfig
from sparta.records import PreferencePair
from sparta.rundir import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    ADAPTERS,
    TRAINING,
    RunDirectoryError,
    adapter_dir,
    atomic_write_bytes,
    partial_path,
    read_jsonl,
    write_jsonl,
)

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool


def read_adapter(round_path: Path, member: str) -> AdapterFiles:
    """A member's saved adapter as bytes; an error names a missing file."""
    directory = adapter_dir(round_path, member)
    missing = [name for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS) if not (directory / name).is_file()]
    if missing:
        raise RunDirectoryError(f"{directory}: no {' or '.join(missing)}; the round's adapters are incomplete")
    return AdapterFiles(member, {name: (directory / name).read_bytes() for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)})


def _write_files(round_path: Path, trained: TrainedMember) -> None:
    """The member's files under the round directory, every one atomically; only paths under ``adapters/``."""
    root = (Path(round_path) / ADAPTERS).resolve()
    for relative, data in trained.files.items():
        target = (Path(round_path) / relative).resolve()
        if not target.is_relative_to(root):
            raise RunDirectoryError(f"worker sent {relative!r} for member {trained.member!r}, outside {ADAPTERS}/")
        atomic_write_bytes(target, data)


class RayLearner:
    """DPO for every member of the pool on a group of Ray workers."""

    def __init__(self, config: SpartaConfig, workers: WorkerGroup) -> None:
        self.config = config
        self.workers = workers
        self.members = config.member_names()
        self._cluster: Cluster | None = None
        self._pool: Any = None

    @classmethod
    def start(cls, config: SpartaConfig) -> RayLearner:
        """A learner with workers of its own on the cluster ``config.ray`` names; :meth:`close` releases both."""
        cluster = connect(config.ray)
        try:
            learner = cls(config, WorkerGroup(config, cluster))
        except BaseException:
            cluster.close()
            raise
        learner._cluster = cluster
        return learner

    @property
    def pool(self) -> ModelPool:
        """The pool in this process, on CPU, for an engine that tokenizes here and writes the initial adapters from
        it (vLLM): built on first use, never trained, its adapters those of round 0."""
        if self._pool is None:
            from sparta.backends.hf.pool import ModelPool

            cpu = self.config.pool.model_copy(update={"device": "cpu"})
            self._pool = ModelPool(cpu, self.config.training.lora, self.config.run.seed)
        return self._pool

    def train(
        self, pairs: Sequence[PreferencePair], round_dir: Path, seed: int, progress: Progress = _no_progress
    ) -> dict[str, Any]:
        """Train every member on all the round's pairs and save the adapters under ``round_dir``; the Tribe
        contract's ``train``. Per-member metrics also say which ``worker`` trained the member."""
        checkpoint = partial_path(Path(round_dir) / TRAINING)
        done = self._finished_members(round_dir, checkpoint)
        progress(len(done))
        todo = [member for member in self.members if member not in done]
        pairs_ref = ray.put(list(pairs))
        judged = round_references(round_dir)
        calls = [(member, pairs_ref, seed, judged.get(member, {})) for member in todo]
        for finished in self.workers.as_finished("training", "train_member", calls):
            trained: TrainedMember = finished.value
            _write_files(round_dir, trained)
            done[trained.member] = {**trained.metrics, "worker": finished.worker}
            write_jsonl(checkpoint, [{"member": member, "metrics": metrics} for member, metrics in done.items()])
            progress(1)
        self._load_everywhere([read_adapter(round_dir, member) for member in self.members])
        return {"pairs": len(pairs), "members": {member: done[member] for member in self.members}}

    def _finished_members(self, round_dir: Path, checkpoint: Path) -> dict[str, dict[str, Any]]:
        """Members an earlier process trained in this round (recorded after their files were written)."""
        if not checkpoint.exists():
            return {}
        rows = read_jsonl(checkpoint)
        return {
            row["member"]: row["metrics"]
            for row in rows
            if row.get("member") in self.members and adapter_dir(round_dir, row["member"]).is_dir()
        }

    def load_round(self, round_dir: Path) -> None:
        """Every worker takes every member's adapter saved in ``round_dir`` (read here, sent as bytes)."""
        self._load_everywhere([read_adapter(round_dir, member) for member in self.members])

    def _load_everywhere(self, adapters: list[AdapterFiles]) -> None:
        refs = [ray.put(adapter) for adapter in adapters]  # one copy in the object store, fetched by each node
        self.workers.call_all("loading adapters", "load_adapters", *refs)

    def close(self) -> None:
        """Stop the workers and leave the cluster, if :meth:`start` made them."""
        if self._cluster is not None:
            self.workers.close()
            self._cluster.close()
            self._cluster = None


def build(config: SpartaConfig) -> RayLearner:
    """Training on Ray workers of its own, for an engine that answers and judges elsewhere; ``close`` releases them."""
    return RayLearner.start(config)
