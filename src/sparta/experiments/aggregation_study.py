"""Which aggregation rule copes with unreliable judges? Every rule, every kind and share of bad judges, many seeds.

``sparta simulate --study aggregation`` runs the full SPARTA loop on the simulated tribe for every registered
aggregation rule while a share (0, 10, 30, 50 %) of the members judge unreliably in one of the four ways of
``backends/simulated/judges.py``, with judging noise drawn independently of answering skill
(``simulation.judge_noise_model: independent``) so that reliability is unequal and unknown, as the paper's case for
reputation assumes. Each run is scored against the latent truth (label accuracy, Spearman(rating, skill), pool
skill gain; ``experiments/metrics.py``). A share of 0 is one condition shared by the four kinds.

Runs with the same seed share their tribe, instructions and unreliable judges, so rules are compared seed by seed:
a rule's paired difference from a baseline is the mean over seeds of (rule - baseline) on the same seed, with a
95 % t-interval over the seeds.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sparta.backends.simulated.judges import HONEST, JUDGE_KINDS
from sparta.experiments.simulation import simulate, simulation_config
from sparta.pipeline.progress import Reporter
from sparta.rundir import atomic_write_bytes, atomic_write_text, write_json
from sparta.tournament.aggregation import AGGREGATORS

SHARES = (0.0, 0.1, 0.3, 0.5)
KINDS = tuple(kind for kind in JUDGE_KINDS.names() if kind != HONEST)
METRICS = ("label_accuracy", "spearman", "skill_gain")
BASE_OVERRIDES = ("simulation.judge_noise_model=independent",)
BASELINES = ("uniform", "reputation")


@dataclass(frozen=True, kw_only=True)
class StudyRun:
    """One simulated run of the study: a rule, a kind and share of unreliable judges, a seed."""

    aggregation: str
    kind: str  # "none" when share is 0
    share: float
    seed: int

    def overrides(self) -> list[str]:
        extra = [f"simulation.unreliable_judges={{{self.kind}: {self.share}}}"] if self.share > 0 else []
        return [*BASE_OVERRIDES, f"tournament.aggregation={self.aggregation}", *extra]


def study_runs(
    seeds: Sequence[int], rules: Sequence[str], kinds: Sequence[str], shares: Sequence[float]
) -> list[StudyRun]:
    """The grid: every rule x (share 0 once, then every kind at every other share) x every seed."""
    conditions = [("none", 0.0)] if 0.0 in shares else []
    conditions += [(kind, share) for kind in kinds for share in shares if share > 0]
    return [
        StudyRun(aggregation=rule, kind=kind, share=share, seed=seed)
        for kind, share in conditions
        for rule in rules
        for seed in seeds
    ]


MEMORY_FILE_SYSTEM = Path("/dev/shm")


def scratch_parent() -> str | None:
    """Where a study's throw-away run directories go: a memory file system when the machine has one (each run writes
    and syncs some 400 files that are deleted a second later), else the system's temporary directory."""
    if MEMORY_FILE_SYSTEM.is_dir() and os.access(MEMORY_FILE_SYSTEM, os.W_OK):
        return str(MEMORY_FILE_SYSTEM)
    return None


def run_one(run: StudyRun, models: int, rounds: int, instructions: int) -> dict[str, Any]:
    """One run in a temporary directory; its metrics beside its settings."""
    config = simulation_config(models, rounds, instructions, run.seed, run.overrides())
    with tempfile.TemporaryDirectory(prefix="sparta-study-", dir=scratch_parent()) as tmp:
        result = simulate(config, Path(tmp))
    return {**asdict(run), **{metric: getattr(result, metric) for metric in METRICS}, "pairs": result.pairs}


def run_study(
    *,
    models: int,
    rounds: int,
    instructions: int,
    seeds: Sequence[int],
    jobs: int = 1,
    rules: Sequence[str] | None = None,
    kinds: Sequence[str] = KINDS,
    shares: Sequence[float] = SHARES,
    advance: Callable[[int], None] = lambda n: None,
) -> list[dict[str, Any]]:
    """Every run of the grid (in ``jobs`` processes), in grid order."""
    runs = study_runs(seeds, list(rules or AGGREGATORS.names()), kinds, shares)
    if jobs <= 1:
        results = []
        for run in runs:
            results.append(run_one(run, models, rounds, instructions))
            advance(1)
        return results
    by_run: dict[StudyRun, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_one, run, models, rounds, instructions): run for run in runs}
        for future in as_completed(futures):
            by_run[futures[future]] = future.result()
            advance(1)
    return [by_run[run] for run in runs]


def _t95(count: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, count - 1)) if count > 1 else math.nan


def summarise(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sd over seeds of every metric, per (kind, share, rule), in grid order."""
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for row in results:
        groups.setdefault((row["kind"], row["share"], row["aggregation"]), []).append(row)
    summary = []
    for (kind, share, rule), rows in groups.items():
        entry: dict[str, Any] = {"kind": kind, "share": share, "aggregation": rule, "seeds": len(rows)}
        for metric in METRICS:
            values = [row[metric] for row in rows]
            entry[metric] = statistics.fmean(values)
            entry[f"{metric}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def paired_difference(
    results: Sequence[dict[str, Any]], kind: str, share: float, rule: str, baseline: str, metric: str
) -> tuple[float, float, int]:
    """(mean over seeds of rule - baseline, half-width of its 95 % t-interval, seeds) in one condition."""

    def by_seed(name: str) -> dict[int, float]:
        return {
            row["seed"]: row[metric]
            for row in results
            if row["kind"] == kind and row["share"] == share and row["aggregation"] == name
        }

    mine, theirs = by_seed(rule), by_seed(baseline)
    differences = [mine[seed] - theirs[seed] for seed in sorted(mine.keys() & theirs.keys())]
    if not differences:
        return math.nan, math.nan, 0
    spread = statistics.stdev(differences) if len(differences) > 1 else math.nan
    return (
        statistics.fmean(differences),
        _t95(len(differences)) * spread / math.sqrt(len(differences)),
        len(differences),
    )


TARGET_SHARE = 0.3
TARGET_GAIN = 0.05


def target_rows(results: Sequence[dict[str, Any]], kinds: Sequence[str] = KINDS) -> list[dict[str, Any]]:
    """Per kind and rule: label accuracy against both baselines at 30 % unreliable judges and with none.

    The target: at least 5 points above uniform and reputation at 30 %, and no worse than either at 0 % beyond
    seed noise (the upper end of the paired 95 % interval is not below 0).
    """
    rules = sorted({row["aggregation"] for row in results} - set(BASELINES))
    rows = []
    for kind in kinds:
        for rule in rules:
            at_target = {
                b: paired_difference(results, kind, TARGET_SHARE, rule, b, "label_accuracy") for b in BASELINES
            }
            at_zero = {b: paired_difference(results, "none", 0.0, rule, b, "label_accuracy") for b in BASELINES}
            gain_met = all(mean >= TARGET_GAIN for mean, _, _ in at_target.values())
            keeps = all(mean + half >= 0 for mean, half, _ in at_zero.values())
            rows.append(
                {
                    "kind": kind,
                    "aggregation": rule,
                    **{f"vs {b} at 30%": at_target[b][:2] for b in BASELINES},
                    **{f"vs {b} at 0%": at_zero[b][:2] for b in BASELINES},
                    "target met": gain_met and keeps,
                }
            )
    return rows


def _mean_sd(entry: dict[str, Any], metric: str) -> str:
    return f"{entry[metric]:.3f} ± {entry[f'{metric}_sd']:.3f}"


def _signed(pair: tuple[float, float]) -> str:
    mean, half = pair
    return f"{mean:+.3f} ± {half:.3f}" if not math.isnan(half) else f"{mean:+.3f}"


def markdown_tables(summary: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]]) -> str:
    """One table per metric (rows: condition, columns: rules) and the target table, as GitHub markdown."""
    rules = list(dict.fromkeys(entry["aggregation"] for entry in summary))
    conditions = list(dict.fromkeys((entry["kind"], entry["share"]) for entry in summary))
    index = {(e["kind"], e["share"], e["aggregation"]): e for e in summary}
    titles = {
        "label_accuracy": "label accuracy",
        "spearman": "Spearman(rating, skill)",
        "skill_gain": "pool skill gain",
    }
    parts = []
    for metric, title in titles.items():
        lines = [f"**{title}** (mean ± sd over seeds)", "", "| unreliable judges | " + " | ".join(rules) + " |"]
        lines.append("|---" * (len(rules) + 1) + "|")
        for kind, share in conditions:
            name = "none" if share == 0 else f"{share:.0%} {kind}"
            lines.append(f"| {name} | " + " | ".join(_mean_sd(index[(kind, share, r)], metric) for r in rules) + " |")
        parts.append("\n".join(lines))
    columns = [key for key in targets[0] if key.startswith("vs ")] if targets else []
    lines = ["**label accuracy, paired difference over seeds (mean ± 95 % half-width)**", ""]
    lines.append("| unreliable kind | rule | " + " | ".join(columns) + " | target met |")
    lines.append("|---" * (len(columns) + 3) + "|")
    for row in targets:
        cells = " | ".join(_signed(row[c]) for c in columns)
        lines.append(f"| {row['kind']} | {row['aggregation']} | {cells} | {'yes' if row['target met'] else 'no'} |")
    parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


METRIC_TITLES = {
    "label_accuracy": "label accuracy",
    "spearman": "Spearman(rating, skill)",
    "skill_gain": "pool skill gain",
}
JSON_FILE, MARKDOWN_FILE, PLOT_FILE = "study.json", "study.md", "aggregation-study.png"


@dataclass(frozen=True, kw_only=True)
class StudyOutcome:
    summary: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    files: list[Path]


def write_study(out: Path, results: Sequence[dict[str, Any]], settings: dict[str, Any]) -> StudyOutcome:
    """``study.json`` (every run, the summary, the target table), ``study.md`` and the plot, in ``out``."""
    from sparta.report.plots import aggregation_study_png

    kinds = [kind for kind in KINDS if any(row["kind"] == kind for row in results)]
    summary, targets = summarise(results), target_rows(results, kinds)
    files = [out / JSON_FILE, out / MARKDOWN_FILE, out / PLOT_FILE]
    write_json(files[0], {"settings": settings, "runs": list(results), "summary": summary, "target": targets})
    atomic_write_text(files[1], markdown_tables(summary, targets))
    atomic_write_bytes(files[2], aggregation_study_png(summary, kinds, METRIC_TITLES))
    return StudyOutcome(summary=summary, targets=targets, files=files)


def study_command(
    *, models: int, rounds: int, instructions: int, seeds: Sequence[int], jobs: int, out: Path, reporter: Reporter
) -> StudyOutcome:
    """Run the whole study and write its files: what ``sparta simulate --study aggregation`` does."""
    total = len(study_runs(seeds, AGGREGATORS.names(), KINDS, SHARES))
    with reporter.stage(f"aggregation study: {total} runs in {jobs} process(es)", total) as advance:
        results = run_study(
            models=models, rounds=rounds, instructions=instructions, seeds=seeds, jobs=jobs, advance=advance
        )
    settings = {
        "models": models,
        "rounds": rounds,
        "instructions": instructions,
        "seeds": list(seeds),
        "overrides": list(BASE_OVERRIDES),
    }
    return write_study(out, results, settings)
