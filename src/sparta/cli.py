"""The ``sparta`` command line.

Every command lets a :class:`~sparta.errors.SpartaError` (bad input the user can fix) reach :class:`_Commands`,
which prints its message and exits with status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from sparta.config import ConfigError, load_config
from sparta.cpu_threads import ThreadPlan, prepare_cpu_threads
from sparta.errors import SpartaError
from sparta.report.console import RichReporter, console, leaderboard_table, rows_table

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool
    from sparta.config import SpartaConfig
    from sparta.judge_validity import SamplingVariant


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/bold red] {escape(message)}")
    raise typer.Exit(2)


class _Commands(TyperGroup):
    """The one place where user-facing errors become a message and exit status 2."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except SpartaError as err:
            console.print(f"[bold red]error:[/bold red] {escape(str(err))}")  # "[trackio]" is text, not a style
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    help="Align a pool of language models through combat (SPARTA).",
)

SetOption = typer.Option(None, "--set", help="Override a configuration field: section.field=value (repeatable).")


_threads: list[ThreadPlan] = []  # what the callback chose, for the commands that report it


@app.callback()
def _start() -> None:
    """Before any command imports torch: thread count from the CPUs this process may use, idle threads that sleep."""
    _threads[:] = [prepare_cpu_threads()]


def _say_threads() -> None:
    for plan in _threads:
        console.print(f"[dim]{plan.describe()}[/dim]")


_CUT_COLUMNS = ("truncated_answers", "pairs_dropped_truncated", "pairs_too_long")


def _cut_line(rounds: list[dict]) -> str:
    """What answers cut by max_new_tokens and pairs longer than training.max_length cost, over all rounds."""

    def total(key: str) -> int:
        return sum(r[key] or 0 for r in rounds)

    return (
        f"answers cut by max_new_tokens: {total('truncated_answers')}; pairs dropped for a cut answer: "
        f"{total('pairs_dropped_truncated')}; pairs too long for training.max_length (most for one member): "
        f"{total('pairs_too_long')}"
    )


def _print_run_summary(out: Path, seconds: float) -> None:
    from sparta.report.leaderboard import LEADERBOARD_TITLE, round_summaries, run_leaderboard

    rounds = round_summaries(out)
    if rounds:
        columns = ["round", "matches", "rated", "pairs", "judgments", "judge_failures", *_CUT_COLUMNS]
        console.print(rows_table([{k: v for k, v in r.items() if k != "training"} for r in rounds], "Rounds", columns))
        judged = sum(r["judgments"] for r in rounds)
        failed = sum(r["judge_failures"] for r in rounds)
        kept = sum(r["pairs"] for r in rounds)
        console.print(
            f"pairs kept: {kept} of {sum(r['matches'] for r in rounds)} matches; "
            f"judge failure rate: {failed}/{judged} = {failed / judged if judged else 0:.1%}"
        )
        console.print(_cut_line(rounds))
    console.print(leaderboard_table(run_leaderboard(out), LEADERBOARD_TITLE))
    console.print(f"run directory: [bold]{out}[/bold]  ({seconds:.1f} s)")


@app.command()
def run(
    config: Path = typer.Argument(..., help="YAML configuration"),
    out: Path = typer.Option(..., "--out", "-o", help="run directory (created, or resumed if it exists)"),
    overrides: Optional[list[str]] = SetOption,
    resume: bool = typer.Option(False, "--resume", help="require an existing run directory and continue it"),
) -> None:
    """Run SPARTA rounds (or resume a killed run) in a run directory."""
    from sparta.pipeline.loop import run as run_loop

    if resume and not (out / "state.json").exists():
        _fail(f"--resume: {out} holds no run (no state.json)")
    cfg = load_config(config, overrides or [])
    _say_threads()
    start = time.perf_counter()
    run_loop(cfg, out, RichReporter())
    _print_run_summary(out, time.perf_counter() - start)


@app.command()
def simulate(
    models: int = typer.Option(10, min=3, help="pool size (3 or more: two fight, the others judge)"),
    rounds: int = typer.Option(8, min=1),
    instructions: int = typer.Option(1000, min=1, help="instructions per round"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run directory (default: a temporary one)"),
    seed: int = typer.Option(0),
    ablations: bool = typer.Option(False, "--ablations", help="compare aggregation and pairing variants over seeds"),
    study: Optional[str] = typer.Option(
        None, "--study", help="run a study over seeds: 'aggregation' (every rule against unreliable judges)"
    ),
    seeds: int = typer.Option(5, min=1, help="seeds per variant for --ablations and --study"),
    jobs: int = typer.Option(1, min=1, help="--study: processes to run at once (at most one per core)"),
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """SPARTA on a synthetic tribe with latent skills: the full loop in seconds, the paper's ablations, studies."""
    import tempfile

    from sparta.experiments.simulation import run_ablations, simulation_config
    from sparta.experiments.simulation import simulate as run_sim

    start = time.perf_counter()
    if study is not None:
        _simulate_study(study, models, rounds, instructions, list(range(seed, seed + seeds)), jobs, out)
        console.print(f"({time.perf_counter() - start:.1f} s)")
        return
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
        console.print(
            rows_table(
                table_rows,
                f"Simulated ablations: {models} models, {rounds} rounds, "
                f"{instructions} instructions/round, mean ± sd over {seeds} seeds",
            )
        )
        console.print(f"({time.perf_counter() - start:.1f} s)")
        return
    cfg = simulation_config(models, rounds, instructions, seed, overrides or [])
    target = out or Path(tempfile.mkdtemp(prefix="sparta-sim-"))
    result = run_sim(cfg, target, RichReporter())
    console.print(
        f"label accuracy {result.label_accuracy:.3f} over {result.pairs} pairs; "
        f"Spearman(rating, latent skill) {result.spearman:.3f}; pool skill gain {result.skill_gain:.3f}"
    )
    _print_run_summary(target, time.perf_counter() - start)


def _simulate_study(
    name: str, models: int, rounds: int, instructions: int, seeds: list[int], jobs: int, out: Optional[Path]
) -> None:
    """Run a registered study, print its label-accuracy and target tables, say where its files are."""
    from sparta.experiments import STUDIES
    from sparta.experiments.aggregation_study import BASELINES

    target = out or Path(f"runs/study-{name}")
    outcome = STUDIES.get(name)(
        models=models,
        rounds=rounds,
        instructions=instructions,
        seeds=seeds,
        jobs=jobs,
        out=target,
        reporter=RichReporter(),
    )
    accuracy = [
        {
            "unreliable judges": "none" if e["share"] == 0 else f"{e['share']:.0%} {e['kind']}",
            "rule": e["aggregation"],
            "label accuracy": f"{e['label_accuracy']:.3f} ± {e['label_accuracy_sd']:.3f}",
            "Spearman": f"{e['spearman']:.3f} ± {e['spearman_sd']:.3f}",
            "skill gain": f"{e['skill_gain']:.3f} ± {e['skill_gain_sd']:.3f}",
        }
        for e in outcome.summary
    ]
    console.print(
        rows_table(
            accuracy,
            f"{name} study: {models} models, {rounds} rounds, {instructions} "
            f"instructions/round, mean ± sd over {len(seeds)} seeds",
        )
    )
    targets = [
        {
            "kind": row["kind"],
            "rule": row["aggregation"],
            **{key: f"{row[key][0]:+.3f} ± {row[key][1]:.3f}" for key in row if key.startswith("vs ")},
            "target met": "yes" if row["target met"] else "no",
        }
        for row in outcome.targets
    ]
    if targets:
        console.print(rows_table(targets, f"label accuracy, paired difference from {' and '.join(BASELINES)}"))
    console.print("written: " + ", ".join(str(path) for path in outcome.files))


@app.command("init-pool")
def init_pool_command(
    config: Path = typer.Argument(..., help="init-pool YAML (see configs/pool-demo.yaml)"),
    out: Path = typer.Option(..., "--out", "-o", help="where adapters, pool.yaml and diversity.json go (resumable)"),
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Build a diverse pool: one LoRA expert per member, SFT on its own subset over one shared base."""
    from sparta.pool_init import diversity_rows, init_pool

    start = time.perf_counter()
    result = init_pool(config, out, overrides or [], RichReporter())
    rows = diversity_rows(result)
    if rows:
        console.print(
            rows_table(rows, "Diversity on held-out prompts: accuracy per domain, mean disagreement with the others")
        )
    console.print(
        f"pool: [bold]{out / 'pool.yaml'}[/bold]  (sparta run {out / 'pool.yaml'} --out RUN)  "
        f"{time.perf_counter() - start:.0f} s"
    )


@app.command("eval")
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    rounds: Optional[str] = typer.Option(
        None, help="comma-separated rounds (0 = initial pool); default: initial and final"
    ),
    tasks: Optional[Path] = typer.Option(None, help="YAML list of task specs {task, options, limit, scorer, judge}"),
    limit: int = typer.Option(100, min=1, help="items per task (a seeded choice of held-out items)"),
    max_new_tokens: Optional[int] = typer.Option(None, min=1, help="answer length (default: the pool's)"),
) -> None:
    """Evaluate every member at the chosen rounds on held-out items, and each later round against the first on the same
    items (paired); writes eval.json and eval.csv."""
    from sparta.evaluation import eval_table_rows, evaluate_run, paired_table_rows
    from sparta.evaluation.rounds import parse_rounds
    from sparta.evaluation.specs import read_specs

    specs = read_specs(tasks) if tasks else None
    round_list = parse_rounds(rounds) if rounds is not None else None
    result = evaluate_run(run_dir, round_list, specs, limit, RichReporter(), max_new_tokens=max_new_tokens)
    console.print(rows_table(eval_table_rows(result.results), "Evaluation: score [95% bootstrap CI] on held-out items"))
    paired = paired_table_rows(result.results)
    if paired:
        console.print(
            rows_table(
                paired,
                "Change on the same items: difference [95% paired bootstrap CI], McNemar exact p (+gained/-lost) "
                "for 0/1 scores",
            )
        )
    console.print(f"written: {run_dir / 'eval.json'}, {run_dir / 'eval.csv'}")


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="run directories: a method and its baselines"),
    markdown: bool = typer.Option(False, "--markdown", help="print a GitHub table instead"),
) -> None:
    """Several runs side by side: set-up, pairs kept, judge failures, and evaluation when it exists."""
    from sparta.report.compare import compare_rows, markdown_table

    rows, columns = compare_rows(run_dirs)
    if markdown:
        print(markdown_table(rows, columns))
        return
    title = (
        "Runs compared (evaluation: score [95% CI]; change: final minus initial on the same items [95% paired CI], "
        "McNemar p for 0/1 scores; run `sparta eval` to fill it)"
    )
    console.print(rows_table(rows, title, columns))


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    member: str = typer.Option(..., "--member", "-m", help="the member to export"),
    out: Path = typer.Option(..., "--out", "-o", help="a new (or empty) directory"),
    round_index: Optional[int] = typer.Option(
        None, "--round", help="the round after which to export it (0: as configured); default: its last trained round"
    ),
    merged: bool = typer.Option(False, "--merged", help="merge the LoRA into the base: a plain transformers model"),
) -> None:
    """Write one member as a standalone model: merged weights, or its PEFT adapter; tokenizer and chat template."""
    from sparta.publishing import export_member

    done = export_member(run_dir, member, out, round_index, merged)
    kind, loader = ("merged", "AutoModelForCausalLM") if merged else ("adapter", "AutoPeftModelForCausalLM")
    console.print(
        f"exported {done.member} after round {done.round} ({kind}): [bold]{done.out}[/bold]  "
        f"({loader}.from_pretrained({str(done.out)!r}))"
    )


@app.command("export-pairs")
def export_pairs_command(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    out: Path = typer.Option(..., "--out", "-o", help="the dataset directory (new, empty, or an earlier export)"),
) -> None:
    """Every round's preference pairs as one Hugging Face dataset: parquet with a round column, and a dataset card."""
    from sparta.publishing.pairs import export_pairs

    result = export_pairs(run_dir, out)
    rounds = ", ".join(f"{r}: {n}" for r, n in sorted(result.rows_per_round.items()))
    console.print(
        f"{result.rows} pairs ({rounds}) in [bold]{out}[/bold]; load with datasets.load_dataset({str(out)!r})"
    )


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
    """Write RUN_DIR/report.html (self-contained, plots embedded) and the plots as PNGs."""
    from sparta.report.html import write_report

    path = write_report(run_dir)
    console.print(f"report: [bold]{path}[/bold]")


def _judge_check_table(rows: list[dict], title: str):
    from sparta.backends.hf.probes import KINDS

    cols = ["judge_type", "judge", *KINDS, "overall", "failures", "judgments_per_s"]
    return rows_table(rows, title, cols)


@app.command("judge-check")
def judge_check(
    config: Path = typer.Argument(..., help="YAML configuration whose pool members act as judges"),
    types: str = typer.Option("generate,logprob,likelihood", help="comma-separated judge types"),
    n: int = typer.Option(10, "--n", min=0, help="probes per kind (0: no probes)"),
    gold: int = typer.Option(0, "--gold", min=0, help="gold items of the combat instructions to sample (0: off)"),
    samples: int = typer.Option(4, "--samples", min=1, help="answers per item, member and temperature (--gold)"),
    temperatures: Optional[str] = typer.Option(
        None, help="comma-separated temperatures every member samples at (--gold); default: each member's own"
    ),
    max_pairs: int = typer.Option(60, "--max-pairs", min=1, help="most pairs of each kind judged (--gold)"),
    length_ratio: float = typer.Option(1.5, help="length pairs: longer answer at least this many times the shorter"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write every answer, pair and score as JSON"),
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Measure each judge type: pairwise accuracy on probes with a known better response and, with --gold, accuracy
    and temperature/length bias on pairs of the pool's own answers to gold-scored items."""
    from sparta.backends.base import JUDGES
    from sparta.backends.hf.pool import ModelPool
    from sparta.judge_validity import sampling_variants

    cfg = load_config(config, overrides or [])
    judge_types = [JUDGES.check(t.strip(), "--types") for t in types.split(",") if t.strip()]
    if not judge_types:
        raise ConfigError(f"--types names no judge type; known: {', '.join(JUDGES.names())}")
    try:
        temps = [float(t) for t in temperatures.split(",")] if temperatures else None
        pool_config, variants = sampling_variants(cfg.pool, temps if gold else None)
    except ValueError as err:
        _fail(f"--temperatures: {err}")
    start = time.perf_counter()
    pool = ModelPool(pool_config, cfg.training.lora, cfg.run.seed)
    record: dict[str, Any] = {"command": {"config": str(config), "types": judge_types, "overrides": overrides or []}}
    if n > 0:
        record["probes"] = _probe_check(pool, judge_types, cfg, n)
    if gold > 0:
        options = {"gold": gold, "samples": samples, "max_pairs": max_pairs, "length_ratio": length_ratio}
        record["command"].update(options, temperatures=temps)
        record["gold"] = _gold_check(pool, variants, judge_types, cfg, **options)
    record["seconds"] = time.perf_counter() - start
    console.print(f"judge-check: {record['seconds']:.0f} s")
    if out is not None:
        from sparta.rundir import write_json

        write_json(out, record)
        console.print(f"written: {out}")


def _probe_check(pool: ModelPool, judge_types: list[str], cfg: SpartaConfig, n: int) -> list[dict[str, Any]]:
    from sparta.backends.hf.probes import KINDS, best_judge_type
    from sparta.backends.hf.probes import judge_check as run_check

    members = cfg.member_names()  # the members judge; sampling variants only answer
    with RichReporter().stage("judge-check", len(judge_types) * len(members) * n * len(KINDS) * 2) as advance:
        rows = run_check(pool, judge_types, cfg.judge, n, cfg.run.seed, advance, members=members)
    console.print(_judge_check_table(rows, f"judge-check: pairwise accuracy, {n} probes per kind (0.5 = chance)"))
    console.print(f"most accurate judge type on probes: [bold]{best_judge_type(rows)}[/bold]")
    return rows


def _gold_check(
    pool: ModelPool,
    variants: list[SamplingVariant],
    judge_types: list[str],
    cfg: SpartaConfig,
    *,
    gold: int,
    samples: int,
    max_pairs: int,
    length_ratio: float,
) -> dict[str, Any]:
    from sparta.backends.hf.gold_check import gold_check, gold_items
    from sparta.pipeline.loop import combat_instructions
    from sparta.report.judge_validity import best_gold_type, gold_table_rows

    items = gold_items(combat_instructions(cfg), gold, cfg.run.seed)
    if not items:
        _fail(f"--gold: task {cfg.data.task!r} has no items with a gold answer among its combat instructions")
    result = gold_check(
        pool, cfg.member_names(), variants, items, judge_types, cfg.judge,
        samples=samples, seed=cfg.run.seed, max_pairs=max_pairs, min_length_ratio=length_ratio,
        reporter=RichReporter(),
    )  # fmt: skip
    right = sum(s.correct for s in result.samples)
    console.print(f"{len(result.samples)} answers to {len(items)} gold items, {right} right")
    title = "gold check: how often each judge type prefers the right / lower-temperature / shorter answer (0.5 = coin)"
    console.print(rows_table(gold_table_rows(result.rows), title))
    console.print(f"most accurate judge type on gold-decided pairs: [bold]{best_gold_type(result.rows)}[/bold]")
    return result.to_dict()


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="run directory (resumed if it exists)"),
    probes: int = typer.Option(4, min=1, help="judge-check probes per kind before the run"),
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """SPARTA on four SmolLM2-135M-Instruct members: judge-check, two rounds, leaderboard."""
    from sparta.backends.hf.probes import KINDS, best_judge_type
    from sparta.demo import JUDGE_TYPES, check_judges, demo_config, resumed_judge_type
    from sparta.pipeline.loop import run as run_loop

    start = time.perf_counter()
    cfg = demo_config(overrides or [])
    _say_threads()
    chosen = resumed_judge_type(out)
    if chosen is None:
        console.rule("judge-check")
        total = len(JUDGE_TYPES) * len({m.model for m in cfg.pool.members}) * probes * len(KINDS) * 2
        with RichReporter().stage("judge-check", total) as advance:
            rows = check_judges(cfg, probes, advance)
        console.print(
            _judge_check_table(
                rows,
                f"judge-check on {cfg.pool.members[0].model}: pairwise accuracy, "
                f"{probes} probes per kind (0.5 = chance)",
            )
        )
        chosen = best_judge_type(rows)
        console.print(f"the demo judges with [bold]{chosen}[/bold], the most accurate judge type for this model")
    else:
        console.print(f"resuming {out}: it judges with [bold]{chosen}[/bold]")
    cfg = cfg.model_copy(update={"judge": cfg.judge.model_copy(update={"type": chosen})})
    console.rule("SPARTA rounds")
    run_loop(cfg, out, RichReporter())
    _print_run_summary(out, time.perf_counter() - start)


if __name__ == "__main__":
    app()
