"""The ``sparta`` command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from sparta.config import ConfigError, load_config
from sparta.report.console import RichReporter, console, leaderboard_table, rows_table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Align a pool of language models through combat (SPARTA).")

SetOption = typer.Option(None, "--set", help="Override a configuration field: section.field=value (repeatable).")


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/bold red] {message}")
    raise typer.Exit(2)


def _print_run_summary(out: Path, seconds: float) -> None:
    from sparta.report.leaderboard import round_summaries, run_leaderboard

    rounds = round_summaries(out)
    if rounds:
        console.print(
            rows_table(
                [{k: v for k, v in r.items() if k != "training"} for r in rounds],
                "Rounds",
                ["round", "matches", "rated", "pairs", "judgments", "judge_failures"],
            )
        )
        judged = sum(r["judgments"] for r in rounds)
        failed = sum(r["judge_failures"] for r in rounds)
        kept = sum(r["pairs"] for r in rounds)
        console.print(
            f"pairs kept: {kept} of {sum(r['matches'] for r in rounds)} matches; "
            f"judge failure rate: {failed}/{judged} = {failed / judged if judged else 0:.1%}"
        )
    console.print(leaderboard_table(run_leaderboard(out)))
    console.print(f"run directory: [bold]{out}[/bold]  ({seconds:.1f} s)")


@app.command()
def run(
    config: Path = typer.Argument(..., help="YAML configuration"),
    out: Path = typer.Option(..., "--out", "-o", help="run directory (created, or resumed if it exists)"),
    overrides: Optional[list[str]] = SetOption,
    resume: bool = typer.Option(False, "--resume", help="require an existing run directory and continue it"),
) -> None:
    """Run SPARTA rounds (or resume a killed run) in a run directory."""
    from sparta.pipeline.loop import RunDirectoryError
    from sparta.pipeline.loop import run as run_loop

    if resume and not (out / "state.json").exists():
        _fail(f"--resume: {out} holds no run (no state.json)")
    try:
        cfg = load_config(config, overrides or [])
        start = time.perf_counter()
        run_loop(cfg, out, RichReporter())
    except (ConfigError, RunDirectoryError) as err:
        _fail(str(err))
    _print_run_summary(out, time.perf_counter() - start)


@app.command()
def simulate(
    models: int = typer.Option(10, help="pool size"),
    rounds: int = typer.Option(8),
    instructions: int = typer.Option(1000, help="instructions per round"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run directory (default: a temporary one)"),
    seed: int = typer.Option(0),
    ablations: bool = typer.Option(False, "--ablations", help="compare aggregation and pairing variants over seeds"),
    seeds: int = typer.Option(5, help="seeds per variant for --ablations"),
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """SPARTA on a synthetic tribe with latent skills: the full loop in seconds, and the paper's ablations."""
    import tempfile

    from sparta.experiments.simulation import run_ablations, simulate as run_sim, simulation_config

    start = time.perf_counter()
    if ablations:
        rows = run_ablations(models, rounds, instructions, list(range(seed, seed + seeds)))
        table_rows = [
            {
                "variant": r["variant"],
                "label accuracy": f"{r['label_accuracy']:.3f} ± {r['label_accuracy_sd']:.3f}",
                "Spearman(rating, skill)": f"{r['spearman']:.3f} ± {r['spearman_sd']:.3f}",
                "pool skill gain": f"{r['skill_gain']:.3f} ± {r['skill_gain_sd']:.3f}",
            }
            for r in rows
        ]
        console.print(rows_table(table_rows, f"Simulated ablations: {models} models, {rounds} rounds, "
                                 f"{instructions} instructions/round, mean ± sd over {seeds} seeds"))
        console.print(f"({time.perf_counter() - start:.1f} s)")
        return
    try:
        cfg = simulation_config(models, rounds, instructions, seed, overrides or [])
    except ConfigError as err:
        _fail(str(err))
    target = out or Path(tempfile.mkdtemp(prefix="sparta-sim-"))
    result = run_sim(cfg, target, RichReporter())
    console.print(
        f"label accuracy {result.label_accuracy:.3f} over {result.pairs} pairs; "
        f"Spearman(rating, latent skill) {result.spearman:.3f}; pool skill gain {result.skill_gain:.3f}"
    )
    _print_run_summary(target, time.perf_counter() - start)


if __name__ == "__main__":
    app()
