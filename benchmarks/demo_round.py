"""One round of the `sparta demo` run (answer, judge, train: 4 SmolLM2 members), timed stage by stage; prints JSON.

A child process of round_cost.py, so that each path starts torch with its own threads and OpenMP wait policy:

    python benchmarks/demo_round.py new OUT   # today's path; threads and wait policy as the sparta command sets them
    python benchmarks/demo_round.py old OUT   # the per-member path (baseline.py); torch's default threads, spinning

``old`` also restores the demo's batch sizes before mixed batches (8 answers, 8 judgments per batch) and its DPO
before issue 11 (``dpo_baseline.py``: TRL's own reference pass, each prompt run twice and its output head on every
position in the optimizer steps). Both judge with the likelihood judge (the one the demo's judge-check picks for
SmolLM2), skip the judge-check and keep the pairs of cut answers (``tournament.truncated=keep``), so that both
rounds train on every decided match: the same number of pairs.
``--model`` and ``--instructions`` shrink the round for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

OLD_BATCH = 8
"""pool.generation_batch_size and judge.batch_size of the demo before mixed batches."""


def _config(path: str, model: str | None, instructions: int | None) -> Any:
    from sparta.demo import demo_config

    # every decided match becomes a pair, cut answers included: which answers max_new_tokens cuts differs between
    # the two paths' samplers, and with the demo's `drop` the two rounds would train different numbers of pairs
    overrides = ["run.rounds=1", "judge.type=likelihood", "tournament.truncated=keep"]
    if path == "old":
        overrides += [f"pool.generation_batch_size={OLD_BATCH}", f"judge.batch_size={OLD_BATCH}"]
    if instructions:
        overrides.append(f"run.instructions_per_round={instructions}")
    config = demo_config(overrides)
    if model:
        members = [m.model_copy(update={"model": model}) for m in config.pool.members]
        config = config.model_copy(update={"pool": config.pool.model_copy(update={"members": members})})
    return config


class _Timed:
    """The tribe, with the wall time of each of its stages recorded."""

    def __init__(self, tribe: Any, seconds: dict[str, float]) -> None:
        self._tribe, self._seconds = tribe, seconds
        self.members = tribe.members

    def _timed(self, stage: str, call: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args)
        finally:
            self._seconds[stage] = self._seconds.get(stage, 0.0) + time.perf_counter() - start

    def generate(self, requests, seed, progress=lambda n: None):
        return self._timed("answering", self._tribe.generate, requests, seed, progress)

    def judge(self, requests, progress=lambda n: None):
        return self._timed("judging", self._tribe.judge, requests, progress)

    def train(self, pairs, round_dir, seed, progress=lambda n: None):
        return self._timed("training", self._tribe.train, pairs, round_dir, seed, progress)

    def load_round(self, round_dir):
        return self._tribe.load_round(round_dir)


def _old_paths(tribe: Any) -> None:
    """Answer and judge as before mixed batches, train as before the leaner DPO."""
    from baseline import OldLikelihoodJudge, old_generate
    from dpo_baseline import train_member_trl_reference
    from sparta.backends.hf import training

    config = tribe.config

    def generate(requests, seed, progress=lambda n: None):
        return old_generate(tribe.pool, requests, seed, config.pool.generation_batch_size, progress)

    def train_member(pool, member, pairs, out_dir, training_config, seed, progress=lambda n: None, **_):
        # the old path computes every reference itself
        return train_member_trl_reference(pool, member, pairs, out_dir, training_config, seed)

    tribe.generate = generate
    tribe._judge = OldLikelihoodJudge(tribe.pool, config.judge)
    training.train_member = train_member  # the tribe imports it at each call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", choices=["old", "new"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default=None, help="every member's model (default: the demo's SmolLM2)")
    parser.add_argument("--instructions", type=int, default=None, help="instructions in the round (default: demo's)")
    args = parser.parse_args(argv)
    threads = None
    if args.path == "new":
        from sparta.cpu_threads import prepare_cpu_threads

        threads = prepare_cpu_threads().describe()  # what the sparta command does before importing torch
    import torch

    from sparta.backends.hf.tribe import HFTribe
    from sparta.pipeline.loop import RoundLoop
    from sparta.rundir import TRAINING, read_json, round_dir

    config = _config(args.path, args.model, args.instructions)
    started = time.perf_counter()
    tribe = HFTribe(config)
    loaded = time.perf_counter()
    if args.path == "old":
        _old_paths(tribe)
    seconds: dict[str, float] = {}
    RoundLoop(config, args.out, _Timed(tribe, seconds)).run()
    finished = time.perf_counter()
    training = read_json(round_dir(args.out, 1) / TRAINING)
    report = {
        "path": args.path,
        "threads": threads or f"{torch.get_num_threads()} torch thread(s), OpenMP wait unset (300,000 spins)",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "load_seconds": loaded - started,
        "round_seconds": finished - loaded,
        "stage_seconds": seconds,
        "training": training,
        "instructions": config.run.instructions_per_round,
        "generation_batch_size": config.pool.generation_batch_size,
        "judge_batch_size": config.judge.batch_size,
    }
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
