"""How fast the simulated tribe judges: judgments per second at the paper's scale (10 members, 1000 instructions).

A measurement, not a test: prints the numbers and exits 0.

    .venv/bin/python benchmarks/simulated_judging.py                # 10,000 judgments, 5 repetitions
    .venv/bin/python benchmarks/simulated_judging.py --requests 100000 --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

from sparta.backends.base import build_tribe
from sparta.config import config_from_dict
from sparta.records import Instruction, JudgeRequest


def _requests(tribe, members: int, count: int) -> list[JudgeRequest]:
    instructions = [Instruction(id=f"ins-{i}", text=f"question {i}", domain="math") for i in range(count)]
    answers = tribe.generate([(tribe.members[i % members], x) for i, x in enumerate(instructions)], seed=0)
    requests = []
    for answer, instruction in zip(answers, instructions):
        for judge in tribe.members:
            if judge != answer.model:
                requests.append(JudgeRequest(judge, instruction, answer))
            if len(requests) == count:
                return requests
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    members = [{"name": f"m{i:02d}", "model": "simulated"} for i in range(args.members)]
    tribe = build_tribe(config_from_dict({"backend": {"kind": "simulated"}, "pool": {"members": members}}))
    requests = _requests(tribe, args.members, args.requests)
    seconds = []
    for _ in range(args.reps):
        start = time.perf_counter()
        tribe.judge(requests)
        seconds.append(time.perf_counter() - start)
    best, median = min(seconds), statistics.median(seconds)
    print(f"simulated judging: {len(requests)} judgments, {args.members} members, {args.reps} repetitions")
    print(f"  best {best:.4f} s ({len(requests) / best:,.0f} judgments/s), median {median:.4f} s")


if __name__ == "__main__":
    main()
