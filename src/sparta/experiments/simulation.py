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

from sparta.backends.simulated import SimulatedTribe
from sparta.config import SpartaConfig, config_from_dict
from sparta.experiments.metrics import label_accuracy, spearman
from sparta.pipeline.loop import RoundLoop, RoundStats
from sparta.pipeline.progress import Reporter

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


@dataclass(frozen=True, kw_only=True)
class SimulationResult:
    label_accuracy: float
    spearman: float
    skill_gain: float
    pairs: int
    ratings: dict[str, float]
    skills: dict[str, float]
    rounds: list[RoundStats]


def simulate(config: SpartaConfig, out_dir: Path, reporter: Reporter | None = None) -> SimulationResult:
    """Run the full SPARTA loop on a simulated tribe in ``out_dir`` and score it against the latent truth."""
    tribe = SimulatedTribe(config.member_names(), config.simulation, config.run.seed)
    before = {m: tribe.mean_skill(m) for m in tribe.members}
    loop = RoundLoop(config, out_dir, tribe, reporter)
    rounds = loop.run()
    state = loop.state
    assert state is not None
    after = {m: tribe.mean_skill(m) for m in tribe.members}
    ratings = state.reputation.ratings
    accuracy, pairs = label_accuracy(out_dir, config.run.rounds)
    return SimulationResult(
        label_accuracy=accuracy,
        spearman=spearman([ratings[m] for m in tribe.members], [after[m] for m in tribe.members]),
        skill_gain=statistics.fmean(after[m] - before[m] for m in tribe.members),
        pairs=pairs,
        ratings=dict(ratings),
        skills=after,
        rounds=rounds,
    )


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
