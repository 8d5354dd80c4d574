"""The tribe on Ray workers (``backend.placement: ray``): the Tribe contract, answering and judging sharded.

Answering and judging arrive as the round loop's chunks (boundaries and seeds fixed by the configuration); each
chunk goes whole to one worker, which batches it exactly as the local tribe would, so a ray run writes the same
lines as a local run. ``parallel_chunks`` tells the loop to checkpoint after as many chunks as there are workers.
Training is :class:`~sparta.backends.ray.learner.RayLearner`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sparta.backends.base import GenerateChunk, Progress, _no_progress
from sparta.backends.ray.cluster import Cluster, connect
from sparta.backends.ray.learner import RayLearner
from sparta.backends.ray.workers import WorkerGroup
from sparta.config import SpartaConfig
from sparta.records import Instruction, JudgeRequest, Judgment, PreferencePair, Response


class RayTribe:
    """The pool on ``ray.workers`` data-parallel workers; the driver holds no model."""

    def __init__(self, config: SpartaConfig, cluster: Cluster | None = None) -> None:
        self.config = config
        self.members: list[str] = config.member_names()
        self.cluster = cluster or connect(config.ray)
        try:
            self.workers = WorkerGroup(config, self.cluster)
        except BaseException:
            self.cluster.close()
            raise
        self.learner = RayLearner(config, self.workers)
        self.parallel_chunks = len(self.workers)

    def generate_chunks(
        self, chunks: Iterable[GenerateChunk], progress: Progress = _no_progress
    ) -> Iterator[list[Response]]:
        return self.workers.ordered("answering", "generate", chunks, progress)

    def judge_chunks(
        self, chunks: Iterable[Sequence[JudgeRequest]], progress: Progress = _no_progress
    ) -> Iterator[list[Judgment]]:
        return self.workers.ordered("judging", "judge", ((chunk,) for chunk in chunks), progress)

    def generate(
        self, requests: Sequence[tuple[str, Instruction]], seed: int, progress: Progress = _no_progress
    ) -> list[Response]:
        return next(self.generate_chunks([(requests, seed)], progress))

    def judge(self, requests: Sequence[JudgeRequest], progress: Progress = _no_progress) -> list[Judgment]:
        return next(self.judge_chunks([requests], progress))

    def train(
        self, pairs: Sequence[PreferencePair], round_dir: Path, seed: int, progress: Progress = _no_progress
    ) -> dict[str, Any]:
        return self.learner.train(pairs, round_dir, seed, progress)

    def load_round(self, round_dir: Path) -> None:
        self.learner.load_round(round_dir)

    def close(self) -> None:
        """Stop the workers; a private cluster is shut down."""
        self.workers.close()
        self.cluster.close()


def build(config: SpartaConfig) -> RayTribe:
    """The factory registered as placement ``ray``."""
    return RayTribe(config)
