"""What Ray workers buy on this machine: one SPARTA round, local vs ray placement, stage by stage.

A measurement, not a test: for each configuration it runs the same round three times in fresh processes, with one
torch thread per process: local placement, ray placement with 1 worker, ray placement with 2 workers. It prints
wall seconds per stage, the speedup of 2 workers over 1, PASS/FAIL against the target (2 workers >= 1.5x one
worker on answering and judging), whether every ray run wrote the same lines as the local run, and always exits 0.

    python benchmarks/scale.py                          # configs/tiny.yaml and SmolLM2 (4 members, 1 round)
    python benchmarks/scale.py --quick                  # configs/tiny.yaml only, 8 instructions (about a minute)
    python benchmarks/scale.py --json scale.json        # also write every number

The ray runs join one private cluster (127.0.0.1 only) that this script starts and stops; starting the workers
(model loading) is timed apart from the stages. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {
    "tiny": (ROOT / "configs" / "tiny.yaml", 32),
    "smollm2": (ROOT / "configs" / "smollm2.yaml", 16),
}
"""name -> (configuration, default instructions per round); both run one round."""

STAGES = ("answering", "judging", "training")
TARGET_SPEEDUP = 1.5
TARGET_STAGES = ("answering", "judging")


@dataclass
class Variant:
    """One measured run: where the tribe runs and what each part took."""

    setup: str
    placement: str
    workers: int
    start_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)
    total_s: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "local" if self.placement == "local" else f"ray x{self.workers}"


# --------------------------------------------------------------------------------------------- child process


class _StageClock:
    """A reporter that times each stage of the round loop."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def stage(self, description: str, total: int):
        from contextlib import contextmanager

        @contextmanager
        def timed():
            start = time.perf_counter()
            yield lambda n: None
            self.seconds[description.split(": ", 1)[-1]] = time.perf_counter() - start

        return timed()

    def log(self, message: str) -> None:
        print(message, file=sys.stderr)


def run_child(spec: dict) -> dict:
    """Build the tribe, run the round, return the timings (runs in its own process, one torch thread)."""
    from sparta.backends.base import build_tribe, close_tribe
    from sparta.config import load_config
    from sparta.pipeline.loop import run
    from sparta.rundir import JUDGMENTS, RESPONSES, file_sha256, round_dir

    config = load_config(spec["config"], spec["overrides"])
    start = time.perf_counter()
    tribe = build_tribe(config)
    built = time.perf_counter()
    clock = _StageClock()
    try:
        run(config, Path(spec["out"]), clock, tribe)
    finally:
        close_tribe(tribe)
    done = time.perf_counter()
    files = {name: file_sha256(round_dir(Path(spec["out"]), 1) / name) for name in (RESPONSES, JUDGMENTS)}
    return {"start_s": built - start, "stage_s": clock.seconds, "total_s": done - start, "files": files}


# --------------------------------------------------------------------------------------------- parent


def _say(text: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:6.0f} s] {text}", file=sys.stderr, flush=True)


def _overrides(variant: Variant, instructions: int, address: str, train: bool) -> list[str]:
    common = ["run.rounds=1", f"run.instructions_per_round={instructions}", f"training.enabled={str(train).lower()}"]
    if variant.placement == "local":
        return common
    return [*common, "backend.placement=ray", f"ray.workers={variant.workers}", f"ray.address={address}"]


def measure(variant: Variant, instructions: int, address: str, scratch: Path, train: bool) -> Variant:
    config, _ = SETUPS[variant.setup]
    spec = {
        "config": str(config),
        "overrides": _overrides(variant, instructions, address, train),
        "out": str(scratch / f"{variant.setup}-{variant.placement}-{variant.workers}"),
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{variant.setup} {variant.label} failed:\n{proc.stderr[-4000:]}")
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, value in measured.items():
        setattr(variant, key, value)
    return variant


def table(setup: str, variants: list[Variant]) -> str:
    local, one, two = variants
    rows = [f"{setup}: wall seconds (one torch thread per process)"]
    rows.append(f"  {'stage':<16}{'local':>9}{'ray x1':>9}{'ray x2':>9}{'x2 / x1':>9}  target")
    for stage in ("start", *STAGES, "total"):
        values = [
            v.start_s if stage == "start" else v.total_s if stage == "total" else v.stage_s.get(stage) for v in variants
        ]
        if any(value is None for value in values):
            continue
        speedup = values[1] / values[2] if values[2] else float("nan")
        verdict = ""
        if stage in TARGET_STAGES:
            verdict = f">= {TARGET_SPEEDUP}x {'PASS' if speedup >= TARGET_SPEEDUP else 'FAIL'}"
        rows.append(f"  {stage:<16}" + "".join(f"{value:9.1f}" for value in values) + f"{speedup:8.2f}x  {verdict}")
    same = all(v.files == local.files for v in (one, two))
    rows.append(f"  ray runs wrote the local run's responses and judgments: {'yes' if same else 'NO'}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--instructions", type=int, default=None, help="per round (default: 32 tiny, 16 smollm2)")
    parser.add_argument("--no-training", action="store_true", help="skip the training stage (answering, judging)")
    parser.add_argument("--quick", action="store_true", help="configs/tiny.yaml only, 8 instructions")
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(json.loads(args.child))))
        return 0
    setups = ["tiny"] if args.quick else args.setups
    instructions = 8 if args.quick and args.instructions is None else args.instructions

    from sparta.backends.hf.models import resolve_model
    from sparta.backends.ray.cluster import start_private
    from sparta.config import load_config

    for setup in setups:  # build or check the model cache before any clock starts
        for model in {m.model for m in load_config(SETUPS[setup][0]).pool.members}:
            resolve_model(model)
    load = os.getloadavg()
    _say("starting a private Ray cluster on 127.0.0.1")
    cluster = start_private(cpus=4, gpus=0, object_store_mb=512)
    import ray

    address = ray.get_runtime_context().gcs_address
    results: dict[str, list[Variant]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="sparta-scale-") as scratch:
            for setup in setups:
                count = instructions or SETUPS[setup][1]
                results[setup] = []
                for placement, workers in (("local", 0), ("ray", 1), ("ray", 2)):
                    variant = Variant(setup, placement, workers)
                    _say(f"{setup}: {variant.label}, {count} instructions")
                    results[setup].append(measure(variant, count, address, Path(scratch), not args.no_training))
    finally:
        cluster.close()
    after = [round(x, 2) for x in os.getloadavg()]
    print(f"cpus {os.cpu_count()}, load before {[round(x, 2) for x in load]}, after {after}")
    for setup, variants in results.items():
        print(table(setup, variants))
    if args.json:
        record = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "load_before": load,
            "load_after": os.getloadavg(),
            "results": {setup: [asdict(v) for v in variants] for setup, variants in results.items()},
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


_STARTED = time.perf_counter()

if __name__ == "__main__":
    sys.exit(main())
