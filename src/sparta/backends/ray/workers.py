"""The tribe's worker actors as one group: start them, hand out calls, report progress, lose one loudly.

Calls go to whichever worker is free, one call per worker at a time, so a slow chunk never holds up the others.
:meth:`WorkerGroup.ordered` yields results in call order (answering and judging: the run directory's lines come
in chunk order); :meth:`WorkerGroup.as_finished` yields them as they finish (training writes each adapter at once).
While calls run, the driver asks every worker how many requests it has finished, a few times a second, and moves
the progress bar by the difference.

A worker that dies (killed, out of memory, its node gone) ends the stage with :class:`WorkerLostError` naming it
and the stage; the calls running on the other workers are awaited first and their results handed over, so
nothing that finished is lost. An error raised by our own code on a worker (a :class:`SpartaError`, e.g. a prompt
over ``pool.max_prompt_tokens``) is raised again in the driver as itself.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from sparta.backends.ray.cluster import Cluster
from sparta.backends.ray.worker import REMOTE_WORKER, WorkerInfo
from sparta.config import SpartaConfig
from sparta.errors import SpartaError

POLL_SECONDS = 0.25
"""How often the driver asks the workers for progress while calls run."""

PROGRESS_TIMEOUT_SECONDS = 5.0


class WorkerLostError(SpartaError, RuntimeError):
    """A Ray worker died in the middle of a stage; what finished before is saved and the run can resume."""

    def __init__(self, worker: WorkerInfo, stage: str, reason: str, log_dir: str) -> None:
        self.worker, self.stage = worker, stage
        super().__init__(
            f"ray worker {worker.describe()} died while {stage}: {reason}. "
            f"Everything finished before is in the run directory; run the same command with --resume to continue. "
            f"Worker logs: {log_dir}"
        )


class ClusterTooSmallError(SpartaError, RuntimeError):
    """The cluster cannot hold the workers the configuration asks for."""


@dataclass(frozen=True)
class Finished:
    """One finished call: its position among the calls, the worker that ran it and what it returned."""

    index: int
    worker: int
    value: Any


def _reason(err: RayActorError) -> str:
    """The first line of Ray's account of a death (the rest is a long report kept in the worker logs)."""
    text = str(err).strip().splitlines()
    return text[0].rstrip(".") if text else type(err).__name__


def _raise_cause(err: RayTaskError) -> None:
    """A SpartaError raised by our code on a worker reaches the user as itself; anything else is a bug."""
    if isinstance(err.cause, SpartaError):
        raise err.cause from err
    raise err


def _check_room(config: SpartaConfig) -> None:
    total = ray.cluster_resources()
    wanted = {"CPU": config.ray.cpus_per_worker, "GPU": config.ray.gpus_per_worker}
    for resource, per_worker in wanted.items():
        need = per_worker * config.ray.workers
        if need > total.get(resource, 0) + 1e-9:
            fits = math.floor(total.get(resource, 0) / per_worker + 1e-9)
            raise ClusterTooSmallError(
                f"ray.workers={config.ray.workers} x {per_worker} {resource} per worker needs {need:g} {resource}; "
                f"the cluster has {total.get(resource, 0):g}. Lower ray.workers to {fits} or the per-worker share"
            )


class WorkerGroup:
    """``config.ray.workers`` actors, each holding the whole pool, ready when the constructor returns."""

    def __init__(self, config: SpartaConfig, cluster: Cluster) -> None:
        self.cluster = cluster
        _check_room(config)
        threads = max(1, math.floor(config.ray.cpus_per_worker))
        options = {
            "num_cpus": config.ray.cpus_per_worker,
            "num_gpus": config.ray.gpus_per_worker,
            "max_restarts": 0,
            "scheduling_strategy": "SPREAD",
        }
        self.actors = [REMOTE_WORKER.options(**options).remote(index, threads) for index in range(config.ray.workers)]
        self.infos = [WorkerInfo(index) for index in range(len(self.actors))]  # pid and node once set up
        self._seen = [0] * len(self.actors)
        try:
            self.infos = self.call_all("starting", "setup", config)
        except BaseException:
            self.close()  # none of them is any use now; on a joined cluster they would hold their share
            raise

    def __len__(self) -> int:
        return len(self.actors)

    # ------------------------------------------------------------------ calls

    def call_all(self, stage: str, method: str, *args: Any) -> list[Any]:
        """The same call on every worker; their results in worker order."""
        calls = [(getattr(actor, method).remote(*args), index) for index, actor in enumerate(self.actors)]
        results: list[Any] = [None] * len(calls)
        lost: WorkerLostError | None = None
        for ref, index in calls:
            try:
                results[index] = ray.get(ref)
            except RayActorError as err:
                lost = lost or WorkerLostError(self.infos[index], stage, _reason(err), self.cluster.log_dir)
            except RayTaskError as err:
                _raise_cause(err)
        if lost is not None:
            self.cluster.keep_logs = True
            raise lost
        return results

    def as_finished(
        self, stage: str, method: str, calls: Iterable[tuple[Any, ...]], progress: Callable[[int], None] | None = None
    ) -> Iterator[Finished]:
        """Run ``method(*args)`` for every ``args`` in ``calls`` on the first free worker; yield as they finish.

        ``progress``, if given, is moved by the requests the workers report finished.
        """
        pending = deque(enumerate(calls))
        idle = deque(range(len(self.actors)))
        running: dict[Any, tuple[int, int]] = {}  # object ref -> (call index, worker index)
        lost: WorkerLostError | None = None
        while pending or running:
            while idle and pending:
                index, args = pending.popleft()
                worker = idle.popleft()
                running[getattr(self.actors[worker], method).remote(*args)] = (index, worker)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS if progress else None)
            if progress is not None:
                self._report(progress)
            for ref in ready:
                index, worker = running.pop(ref)
                try:
                    value = ray.get(ref)
                except RayActorError as err:
                    lost = lost or WorkerLostError(self.infos[worker], stage, _reason(err), self.cluster.log_dir)
                    pending.clear()  # the calls still running elsewhere are awaited, no new ones start
                    continue
                except RayTaskError as err:
                    _raise_cause(err)
                idle.append(worker)
                yield Finished(index, worker, value)
        if lost is not None:
            self.cluster.keep_logs = True
            raise lost

    def ordered(
        self, stage: str, method: str, calls: Iterable[tuple[Any, ...]], progress: Callable[[int], None] | None = None
    ) -> Iterator[Any]:
        """As :meth:`as_finished`, but the results come in call order (each as soon as those before it are in)."""
        waiting: dict[int, Any] = {}
        next_index = 0
        for done in self.as_finished(stage, method, calls, progress):
            waiting[done.index] = done.value
            while next_index in waiting:
                yield waiting.pop(next_index)
                next_index += 1

    def _report(self, progress: Callable[[int], None]) -> None:
        """Move ``progress`` by what each live worker finished since it was last asked."""
        refs = [actor.progress.remote() for actor in self.actors]
        for index, ref in enumerate(refs):
            try:
                finished = ray.get(ref, timeout=PROGRESS_TIMEOUT_SECONDS)
            except (RayActorError, GetTimeoutError):
                continue  # a dead worker is reported by its call; a slow answer by the next poll
            if finished > self._seen[index]:
                progress(finished - self._seen[index])
                self._seen[index] = finished

    def apply(self, worker: int, function: Callable[..., Any], *args: Any) -> Any:
        """``function(tribe, *args)`` on one worker's tribe."""
        return ray.get(self.actors[worker].apply.remote(function, *args))

    def close(self) -> None:
        """Stop every worker (its memory and devices are freed at once)."""
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
