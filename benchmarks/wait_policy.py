"""How idle OpenMP threads should wait: generation speed quiet and beside a CPU-bound process, per wait policy.

A measurement, not a test. For each policy, a fresh process (OpenMP reads its variables once, at start) answers
``--requests`` procedural instructions per member of a 4-member SmolLM2 pool in one mixed batch, every answer forced
to ``--max-new-tokens`` tokens, and prints tokens/s; once alone and once beside ``--neighbour`` (cpu_sharing.py).
A policy is good when it is fast alone *and* slows down little beside the neighbour (``sparta`` chose the count
in ``sparta.cpu_threads.WAIT_POLICY`` from this table).

    python benchmarks/wait_policy.py                                # passive, 1000, 3000, 10000 spins; ~6 min
    python benchmarks/wait_policy.py --policies passive 1000 --neighbour torch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cpu_sharing import THREAD_VARIABLES, neighbour

HERE = Path(__file__).resolve().parent


def _env(policy: str, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env["GOMP_SPINCOUNT"] = policy
    return env


def child(model: str, requests: int, tokens: int) -> None:
    """Runs in the fresh process: one mixed batch of every member's requests; prints tok/s as JSON."""
    import sparta.backends.hf.generation as generation
    from mixed_batches import forced_length, member_pool
    from sparta.tasks import procedural_instructions

    pool = member_pool(model, 4, tokens)
    pairs = [(m, i) for i in procedural_instructions(requests, seed=0) for m in pool.members]
    with forced_length(pool, tokens):
        generation.generate(pool, pairs[:2], seed=1, batch_size=2)  # warm-up
        start = time.perf_counter()
        answers = generation.generate(pool, pairs, seed=7, batch_size=len(pairs))
        seconds = time.perf_counter() - start
    print(json.dumps({"tokens_per_s": sum(a.meta["new_tokens"] for a in answers) / seconds}))


def measure(policy: str, beside: str | None, args: argparse.Namespace) -> float:
    cmd = [sys.executable, __file__, "--child", args.model, str(args.requests), str(args.max_new_tokens)]
    with neighbour(beside):
        done = subprocess.run(cmd, env=_env(policy, args.threads), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"policy {policy}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["tokens_per_s"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", nargs="+", default=["passive", "1000", "3000", "10000"], help="passive or spins")
    parser.add_argument("--neighbour", choices=["busy", "torch"], default="busy")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--requests", type=int, default=4, help="per member")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0
    print(f"{args.model}: 4 members x {args.requests} requests x {args.max_new_tokens} tokens, {args.threads} threads")
    print(f"{'wait policy':<14}{'quiet tok/s':>12}{f'{args.neighbour} tok/s':>14}{'beside / quiet':>16}")
    for policy in args.policies:
        quiet, shared = measure(policy, None, args), measure(policy, args.neighbour, args)
        name = "passive" if policy == "passive" else f"{policy} spins"
        print(f"{name:<14}{quiet:>12.1f}{shared:>14.1f}{quiet / shared:>15.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
