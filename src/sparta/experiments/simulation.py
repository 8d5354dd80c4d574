"""SPARTA on a synthetic tribe, and the paper's ablations measured against the ground truth it knows.

The simulated tribe knows every response's latent quality and every member's latent skill, so we can ask
what a real run cannot: how often the chosen response is really better (label accuracy), whether the
reputation ranks members by true skill (Spearman), and whether the pool as a whole got better (skill gain).
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

from sparta.backends.simulated import SimulatedTribe
from sparta.config import SpartaConfig, config_from_dict
from sparta.pipeline.loop import RoundLoop
from sparta.pipeline.progress import Reporter
from sparta.rundir import read_jsonl, round_dir

ABLATIONS: dict[str, list[str]] = {
    "SPARTA (reputation + match-making)": [],
    "uniform aggregation": ["tournament.aggregation=uniform"],
    "random pairing (alpha = 1)": ["tournament.alpha=1.0"],
}


def simulation_config(
    models: int, rounds: int, instructions: int, seed: int = 0, overrides: Sequence[str] = ()
) -> SpartaConfig:
    """A simulated run of ``models`` members; the procedural suite is sized so rounds never repeat an instruction."""
    holdout = 0.2
    size = math.ceil(instructions * rounds / (1 - holdout)) + 16
    data = {
        "run": {"name": "simulation", "seed": seed, "rounds": rounds, "instructions_per_round": instructions},
        "backend": {"kind": "simulated"},
        "data": {"task": "procedural", "options": {"size": size, "seed": seed}, "holdout_fraction": holdout},
        "pool": {"members": [{"name": f"m{i:02d}", "model": "simulated"} for i in range(1, models + 1)]},
        "training": {"enabled": True},
    }
    return config_from_dict(data, "simulation", list(overrides))


@dataclass
class SimulationResult:
    label_accuracy: float
    spearman: float
    skill_gain: float
    pairs: int
    ratings: dict[str, float]
    skills: dict[str, float]


def label_accuracy(run_dir: Path, rounds: int) -> tuple[float, int]:
    """Share of kept pairs whose chosen response has the higher latent quality."""
    right = total = 0
    for r in range(1, rounds + 1):
        rd = round_dir(run_dir, r)
        quality = {(x["instruction_id"], x["model"]): x["meta"]["quality"] for x in read_jsonl(rd / "responses.jsonl")}
        for p in read_jsonl(rd / "pairs.jsonl"):
            iid = p["instruction_id"]
            right += quality[(iid, p["chosen_model"])] > quality[(iid, p["rejected_model"])]
            total += 1
    return (right / total if total else float("nan")), total


def simulate(config: SpartaConfig, out_dir: Path, reporter: Reporter | None = None) -> SimulationResult:
    """Run the full SPARTA loop on a simulated tribe in ``out_dir`` and score it against the latent truth."""
    tribe = SimulatedTribe(config.member_names(), config.simulation, config.run.seed)
    before = {m: tribe.mean_skill(m) for m in tribe.members}
    loop = RoundLoop(config, out_dir, tribe, reporter)
    loop.run()
    state = loop.state
    assert state is not None
    after = {m: tribe.mean_skill(m) for m in tribe.members}
    ratings = state.reputation.ratings
    rho = spearmanr([ratings[m] for m in tribe.members], [after[m] for m in tribe.members]).statistic
    acc, pairs = label_accuracy(out_dir, config.run.rounds)
    gain = statistics.fmean(after[m] - before[m] for m in tribe.members)
    return SimulationResult(acc, float(rho), gain, pairs, dict(ratings), after)


def run_ablations(
    models: int, rounds: int, instructions: int, seeds: Sequence[int], reporter: Reporter | None = None
) -> list[dict[str, Any]]:
    """Every ablation at every seed; rows with mean and sd of each metric."""
    rows = []
    for name, overrides in ABLATIONS.items():
        results = []
        for seed in seeds:
            config = simulation_config(models, rounds, instructions, seed, overrides)
            with tempfile.TemporaryDirectory(prefix="sparta-ablation-") as tmp:
                results.append(simulate(config, Path(tmp), reporter))
        row: dict[str, Any] = {"variant": name, "seeds": len(results)}
        for metric in ("label_accuracy", "spearman", "skill_gain"):
            values = [getattr(x, metric) for x in results]
            row[metric] = statistics.fmean(values)
            row[f"{metric}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows
