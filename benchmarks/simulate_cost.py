"""What `sparta simulate` costs: wall and CPU seconds of the whole command, repeated.

A measurement, not a test. Each repetition runs the real command line in a fresh process (imports, the round loop,
the run directory on disk, the leaderboard) and prints its wall time and the CPU time of that process (user + sys,
which a shared machine inflates less than wall time), then the best and the median of each.

    python benchmarks/simulate_cost.py                        # 10 models x 8 rounds x 1000 instructions, 3 times
    python benchmarks/simulate_cost.py --repeat 5 --models 4 --rounds 2 --instructions 200
    python benchmarks/simulate_cost.py --set simulation.judge_noise_model=independent
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(args: argparse.Namespace) -> tuple[float, float]:
    """(wall s, CPU s) of one `sparta simulate` in a fresh process and a fresh run directory."""
    with tempfile.TemporaryDirectory(prefix="sparta-simcost-") as tmp:
        command = [sys.executable, "-m", "sparta.cli", "simulate", "--out", f"{tmp}/run"]
        command += [
            "--models",
            str(args.models),
            "--rounds",
            str(args.rounds),
            "--instructions",
            str(args.instructions),
        ]
        for override in args.set or []:
            command += ["--set", override]
        cpu_before, start = child_cpu_seconds(), time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return time.perf_counter() - start, child_cpu_seconds() - cpu_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--instructions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", action="append", help="a configuration override passed on to sparta simulate")
    args = parser.parse_args()
    print(f"sparta simulate --models {args.models} --rounds {args.rounds} --instructions {args.instructions}")
    print(f"load before {[round(x, 2) for x in os.getloadavg()]}")
    walls, cpus = [], []
    for repetition in range(1, args.repeat + 1):
        wall, cpu = one_run(args)
        walls.append(wall)
        cpus.append(cpu)
        print(f"  run {repetition}: wall {wall:6.2f} s   cpu {cpu:6.2f} s")
    print(f"wall best {min(walls):.2f} s, median {statistics.median(walls):.2f} s")
    print(f"cpu  best {min(cpus):.2f} s, median {statistics.median(cpus):.2f} s")
    print(f"load after {[round(x, 2) for x in os.getloadavg()]}")


if __name__ == "__main__":
    main()
