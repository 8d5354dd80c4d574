"""``evaluate_run``: every member of a run, at chosen rounds, on held-out items, with resumable per-cell results.

One :class:`ModelPool` is built from the run's configuration (greedy decoding, one ``max_new_tokens`` for all) and
walks forward through the rounds, loading each round's saved adapters. Judges named by task specs join that pool
as extra members that never receive round adapters, so every round is judged by the same model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparta.backends.base import Progress
from sparta.config import ConfigError, MemberConfig, SamplingConfig, SpartaConfig, load_config
from sparta.errors import SpartaError
from sparta.evaluation.cache import ResultCache, fingerprint
from sparta.evaluation.results import EvalResults, write_responses, write_results
from sparta.evaluation.rounds import INITIAL, adapter_dir, adapter_round, resolve_rounds
from sparta.evaluation.scoring import EVAL_SCORERS, ItemScore, ItemScorer
from sparta.evaluation.specs import EvalTask, EvalTaskSpec, parse_specs, resolve_task, run_task_spec, seen_texts
from sparta.evaluation.summary import Cell, summarise, unscored
from sparta.pipeline.progress import Reporter, SilentReporter
from sparta.pipeline.state import RunState
from sparta.records import Instruction, Response
from sparta.rundir import ADAPTER_WEIGHTS, file_sha256
from sparta.seeding import derive_seed
from sparta.tracking.tracker import track_evaluation

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool

CACHE_VERSION = 1
JUDGE_PREFIX = "eval-judge"


class EvalError(SpartaError, RuntimeError):
    """A run directory that cannot be evaluated as asked."""


@dataclass
class EvalRun:
    """What one evaluation produced: ``eval.json``'s content, the cells computed now (the others came from the
    cache) and the items that could not be scored."""

    results: EvalResults
    computed: list[Cell] = field(default_factory=list)
    failures: int = 0


# ------------------------------------------------------------------------------------------------ the pool


def judge_members(config: SpartaConfig, specs: Sequence[EvalTaskSpec]) -> dict[str, MemberConfig]:
    """One extra pool member per distinct judge: a member name copies that member as configured at the start."""
    configured = {m.name: m for m in config.pool.members}
    taken = set(configured)
    judges: dict[str, MemberConfig] = {}
    for spec in specs:
        if not spec.judge or spec.judge in judges:
            continue
        index = len(judges) + 1
        while f"{JUDGE_PREFIX}-{index}" in taken:
            index += 1
        name = f"{JUDGE_PREFIX}-{index}"
        taken.add(name)
        source = configured.get(spec.judge)
        judges[spec.judge] = (
            source.model_copy(update={"name": name, "sampling": None})
            if source
            else MemberConfig(name=name, model=spec.judge)
        )
    return judges


class EvalPool:
    """The run's pool plus judge members, built on first use; ``at(r)`` gives it the adapters of round r."""

    def __init__(self, config: SpartaConfig, run_dir: Path, judges: dict[str, MemberConfig], max_new_tokens: int):
        greedy = SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens)
        members = [m.model_copy(update={"sampling": greedy}) for m in config.pool.members]
        self.pool_config = config.pool.model_copy(update={"members": members + list(judges.values())})
        self.config = config
        self.run_dir = run_dir
        self.members = config.member_names()
        self.judge_names = {ref: m.name for ref, m in judges.items()}
        self._pool: ModelPool | None = None
        self._loaded = INITIAL
        self._scorers: dict[tuple[str, str | None], ItemScorer] = {}

    @property
    def pool(self) -> ModelPool:
        if self._pool is None:
            from sparta.backends.hf.pool import ModelPool

            self._pool = ModelPool(self.pool_config, self.config.training.lora, self.config.run.seed)
            self._loaded = INITIAL
            self._scorers.clear()
        return self._pool

    def at(self, r: int) -> ModelPool:
        """The pool with every member as it was after round ``r``."""
        source = adapter_round(self.run_dir, r, self.members)
        if self._pool is not None and source < self._loaded:
            self._pool = None  # going back in time: start again from the initial adapters
        pool = self.pool
        if source != self._loaded:
            for member in self.members:
                pool.load_adapter(member, adapter_dir(self.run_dir, source, member))
            self._loaded = source
        return pool

    def judge_description(self, spec: EvalTaskSpec) -> dict[str, Any] | None:
        """What a judge-scored cell depends on: the judge's model, adapter, system prompt and the judge settings."""
        if not EVAL_SCORERS.get(spec.scorer).needs_judge:
            return None
        member = next(m for m in self.pool_config.members if m.name == self.judge_names[spec.judge])
        return {
            "member": member.model_dump(mode="json", exclude={"name"}),
            "config": self.config.judge.model_dump(mode="json"),
        }

    def scorer(self, spec: EvalTaskSpec) -> ItemScorer:
        key = (spec.scorer, spec.judge)
        if key not in self._scorers:
            judge = self.judge_names.get(spec.judge) if spec.judge else None
            self._scorers[key] = EVAL_SCORERS.get(spec.scorer).build(self.pool, self.config.judge, judge)
        return self._scorers[key]


# ------------------------------------------------------------------------------------------------ one cell


def _row(item: Instruction, response: Response, scored: ItemScore) -> dict[str, Any]:
    return {
        "instruction_id": item.id,
        "domain": item.domain,
        "instruction": item.text,
        "gold": item.answer,
        "answer_type": item.answer_type,
        "response": response.text,
        "score": scored.score,
        "failure": scored.failure,
        "raw": scored.raw,
        "meta": response.meta,
    }


def cell_fingerprint(evaluator: EvalPool, task: EvalTask, r: int, member: str, max_new_tokens: int) -> str:
    """Everything a cell's rows depend on; a change in any of it makes a cached cell stale."""
    source = adapter_round(evaluator.run_dir, r, evaluator.members)
    weights = adapter_dir(evaluator.run_dir, source, member) / ADAPTER_WEIGHTS
    pool = evaluator.config.pool
    member_config = next(m for m in pool.members if m.name == member)
    return fingerprint(
        {
            "version": CACHE_VERSION,
            "items": [[x.id, x.text, x.answer, x.answer_type] for x in task.items],
            "member": member_config.model_dump(mode="json", exclude={"sampling"}),
            "adapter": file_sha256(weights) if source != INITIAL else "initial",
            "max_new_tokens": max_new_tokens,
            "scorer": task.spec.scorer,
            "judge": evaluator.judge_description(task.spec),
            "pool": pool.model_dump(mode="json", include={"dtype", "device", "max_prompt_tokens", "long_prompt"}),
        }
    )


def evaluate_cell(evaluator: EvalPool, task: EvalTask, r: int, member: str, progress: Progress) -> list[dict[str, Any]]:
    """Answer every item as ``member`` after round ``r`` (greedy, batched) and score the answers."""
    from sparta.backends.hf.generation import generate

    pool = evaluator.at(r)
    seed = derive_seed(evaluator.config.run.seed, "eval", r, task.name, member)
    requests = [(member, item) for item in task.items]
    responses = generate(pool, requests, seed, evaluator.config.pool.generation_batch_size, progress)
    scorer = evaluator.scorer(task.spec)
    scored = scorer.score(task.items, responses, progress)
    return [_row(x, resp, s) for x, resp, s in zip(task.items, responses, scored, strict=True)]


# ------------------------------------------------------------------------------------------------ the run


def _load_run(run_dir: Path) -> tuple[SpartaConfig, RunState]:
    config_path, state_path = run_dir / "config.yaml", run_dir / "state.json"
    if not config_path.is_file() or not state_path.is_file():
        raise EvalError(f"{run_dir} is not a run directory: it needs config.yaml and state.json")
    try:
        config = load_config(config_path)
    except ConfigError as err:
        raise EvalError(str(err)) from None
    if config.backend.kind != "hf":
        raise EvalError(
            f"{config_path}: backend.kind is {config.backend.kind!r}; evaluation answers held-out items with real "
            "models, which only the hf backend has"
        )
    return config, RunState.load(state_path)


@dataclass(frozen=True)
class _Plan:
    rounds: list[int]
    tasks: list[EvalTask]
    max_new_tokens: int


def _plan(
    config: SpartaConfig,
    state: RunState,
    run_dir: Path,
    rounds: Sequence[int] | None,
    tasks: Sequence[Mapping[str, Any]] | None,
    limit: int | None,
    max_new_tokens: int | None,
) -> _Plan:
    specs = parse_specs(tasks) if tasks is not None else [run_task_spec(config)]
    if not specs:
        raise EvalError("no evaluation tasks given")
    seen = seen_texts(config)
    return _Plan(
        resolve_rounds(state, rounds, run_dir),
        [resolve_task(config, spec, limit, seen) for spec in specs],
        max_new_tokens or config.pool.sampling.max_new_tokens,
    )


def evaluate_run(
    run_dir: Path,
    rounds: list[int] | None = None,
    tasks: Sequence[Mapping[str, Any]] | None = None,
    limit: int | None = None,
    reporter: Reporter | None = None,
    *,
    max_new_tokens: int | None = None,
) -> EvalRun:
    """Evaluate every member at ``rounds`` (default: 0 and the last completed) on held-out items of ``tasks``.

    ``tasks`` are specs like ``{"task": name, "options": {...}, "limit": n, "scorer": "answer"|"judge",
    "judge": member-or-model}`` (default: the run's own task, gold-answer items). Writes ``eval.json``,
    ``eval.csv`` and ``eval_responses/round_RRR/TASK.jsonl`` into ``run_dir``; finished cells are cached in
    ``eval_cache/`` and reused by a later call. The scores go to the run's trackers (``tracking:``) too.
    """
    run_dir = Path(run_dir)
    reporter = reporter or SilentReporter()
    config, state = _load_run(run_dir)
    plan = _plan(config, state, run_dir, rounds, tasks, limit, max_new_tokens)
    evaluator = EvalPool(config, run_dir, judge_members(config, [t.spec for t in plan.tasks]), plan.max_new_tokens)
    rows: dict[Cell, list[dict[str, Any]]] = {}
    computed: list[Cell] = []
    for r in plan.rounds:
        for task in plan.tasks:
            done = _evaluate_cells(evaluator, ResultCache(run_dir), task, r, plan.max_new_tokens, reporter)
            computed += [(r, task.name, m) for m in done.computed]
            rows.update({(r, task.name, m): cell for m, cell in done.rows.items()})
            flat = [{"member": m, **row} for m, cell in done.rows.items() for row in cell]
            write_responses(run_dir, r, task.name, flat)
    binary = {t.name for t in plan.tasks if EVAL_SCORERS.get(t.spec.scorer).binary}
    names = [t.name for t in plan.tasks]
    results = summarise(rows, plan.rounds, names, evaluator.members, config.run.seed, binary)
    result = EvalRun(results, computed, unscored(rows))
    if result.failures:
        reporter.log(f"{result.failures} judgments could not be read and were left out of the scores")
    write_results(run_dir, results)
    track_evaluation(config, run_dir, results.model_dump(mode="json"))
    return result


@dataclass
class _Cells:
    rows: dict[str, list[dict[str, Any]]]
    computed: list[str]


def _evaluate_cells(
    evaluator: EvalPool, cache: ResultCache, task: EvalTask, r: int, max_new_tokens: int, reporter: Reporter
) -> _Cells:
    """Every member's rows for one (round, task): from the cache where its fingerprint matches, else computed."""
    members = evaluator.members
    keys = {m: cell_fingerprint(evaluator, task, r, m, max_new_tokens) for m in members}
    cached = {m: cache.load(r, task.name, m, keys[m]) for m in members}
    pending = [m for m in members if cached[m] is None]
    if len(pending) < len(members):
        reporter.log(f"round {r}, {task.name}: {len(members) - len(pending)} of {len(members)} members cached")
    if pending:
        steps = len(pending) * len(task.items) * 2  # answering, then scoring, every item
        with reporter.stage(f"round {r}: evaluating {task.name}", steps) as advance:
            for m in pending:
                cached[m] = evaluate_cell(evaluator, task, r, m, advance)
                cache.save(r, task.name, m, keys[m], cached[m])
    return _Cells({m: cached[m] or [] for m in members}, pending)
