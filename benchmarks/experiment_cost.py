"""What the SmolLM2 experiment costs: one real round and one evaluation, stage by stage, in CPU and wall seconds.

A measurement, not a test. It runs one round of a configuration (default configs/experiment/sparta.yaml, whose expert
pool `sparta init-pool configs/pool-demo.yaml --out pools/experiment` builds) through the real round loop and
`sparta eval` in a temporary directory, timing every stage with a reporter, and prints the cost of one unit of
work of each stage: an answer, a judgment, a DPO step (a batch of pairs, one member), an evaluation item (one member,
greedy). CPU seconds are this process's own (`time.process_time`); with one torch thread they are what the stage
takes on an idle core, so they stay meaningful on a machine shared with other jobs, where wall time does not.

    OMP_NUM_THREADS=1 python benchmarks/experiment_cost.py                       # 8 instructions, 240 eval items
    OMP_NUM_THREADS=1 python benchmarks/experiment_cost.py --instructions 16 --eval-items 24 --json cost.json

docs/results.md section 5 sizes the experiment with these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from sparta.config import load_config
from sparta.evaluation import evaluate_run
from sparta.pipeline.loop import run


class TimingReporter:
    """Records, for every stage the pipeline reports, its number of units and its CPU and wall seconds."""

    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []

    @contextmanager
    def stage(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        cpu, wall = time.process_time(), time.perf_counter()
        yield lambda n: None
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        self.stages.append({"stage": description, "units": total, "cpu_s": cpu, "wall_s": wall})
        print(f"  {description}: {total} units, {cpu:.1f} s CPU, {wall:.1f} s wall", flush=True)

    def log(self, message: str) -> None:
        print(f"  {message}", flush=True)


def _unit_costs(stages: list[dict[str, Any]], steps: int) -> dict[str, float]:
    """CPU seconds per unit: answer, judgment, DPO step, evaluation item (answering plus scoring)."""

    def total(word: str) -> float:
        return sum(s["cpu_s"] for s in stages if word in s["stage"])

    def units(word: str) -> int:
        return sum(s["units"] for s in stages if word in s["stage"])

    answered = sum(s["units"] for s in stages if s["stage"].endswith("answering"))
    judged = units("judging")
    evaluated = units("evaluating") // 2  # the evaluation counts every item twice: answering, then scoring
    return {
        "answer": total("answering") / max(answered, 1),
        "judgment": total("judging") / max(judged, 1),
        "dpo_step": total("training") / max(steps, 1),
        "eval_item": total("evaluating") / max(evaluated, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="configs/experiment/sparta.yaml")
    parser.add_argument("--instructions", type=int, default=8, help="instructions in the measured round")
    parser.add_argument("--eval-items", type=int, default=240, help="held-out items per member in the evaluation")
    parser.add_argument("--eval-tokens", type=int, default=48, help="answer length in the evaluation")
    parser.add_argument("--eval-tasks", default="configs/experiment/eval.yaml")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args()
    overrides = ["run.rounds=1", f"run.instructions_per_round={args.instructions}"]
    config = load_config(args.config, overrides)
    reporter = TimingReporter()
    load = time.process_time()
    with tempfile.TemporaryDirectory(prefix="sparta-cost-") as scratch:
        run_dir = Path(scratch) / "run"
        print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load {os.getloadavg()}")
        run(config, run_dir, reporter)
        training = json.loads((run_dir / "round_001" / "training.json").read_text())
        steps = sum(m.get("steps", 0) for m in training["members"].values())
        specs = [{**spec, "limit": args.eval_items} for spec in yaml.safe_load(Path(args.eval_tasks).read_text())]
        evaluate_run(run_dir, [0], specs, args.eval_items, reporter, max_new_tokens=args.eval_tokens)
    result = {
        "config": args.config,
        "instructions": args.instructions,
        "members": len(config.pool.members),
        "dpo_steps": steps,
        "process_cpu_s": time.process_time() - load,
        "stages": reporter.stages,
        "cpu_s_per_unit": _unit_costs(reporter.stages, steps),
    }
    print("\nCPU seconds per unit (one torch thread):")
    for unit, seconds in result["cpu_s_per_unit"].items():
        print(f"  {unit:>9}: {seconds:.2f}")
    print(f"whole process: {result['process_cpu_s']:.0f} s CPU (model loads included)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
