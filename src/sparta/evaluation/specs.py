"""What to evaluate on: task specs and the held-out items each one yields.

A spec names a registered task (``sparta.tasks``) and how to score it::

    {"task": "procedural", "options": {"size": 400}, "limit": 100}          # gold answers (scorer: answer)
    {"task": "alpaca", "options": {...}, "scorer": "judge", "judge": "careful"}

Combat never sees the held-out share of the run's own instruction set, so when a spec is the run's data task
(same name and options) only that share is used. Any other task was never seen in combat: all of it is held out,
except items whose text the pool saw: an instruction combat could draw (the same file under other options, a
duplicate), or a prompt or response a member's initial adapter was fine-tuned on, as recorded beside the adapter
(``sft_examples.jsonl``, written by ``sparta init-pool``). ``limit`` items are then chosen by a seeded hash of
their ids, so the choice is stable when the task grows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sparta.config import SpartaConfig, read_yaml_file
from sparta.errors import SpartaError
from sparta.evaluation.scoring import EVAL_SCORERS
from sparta.records import Instruction
from sparta.rundir import SFT_EXAMPLES, read_jsonl
from sparta.seeding import derive_seed
from sparta.tasks import load_task, split_holdout

DEFAULT_LIMIT = 100
NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


class EvalSpecError(SpartaError, ValueError):
    """An evaluation task spec that cannot be used; the message names the spec and the field."""


class EvalTaskSpec(BaseModel):
    """One evaluation task as a user writes it (a YAML/JSON mapping)."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(..., min_length=1, description="a registered task name")
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(None, ge=1, description="items kept (seeded choice); the evaluation's limit if unset")
    name: str | None = Field(None, pattern=NAME_PATTERN, description="label in the results; the task name if unset")
    scorer: str = Field("answer", description="a registered evaluation scorer: answer (gold check) or judge")
    judge: str | None = Field(None, description="scorer judge: a member name, a model id, a local path or an alias")

    @property
    def label(self) -> str:
        return self.name or self.task


@dataclass(frozen=True)
class EvalTask:
    """A spec resolved to the items it evaluates."""

    spec: EvalTaskSpec
    items: list[Instruction]

    @property
    def name(self) -> str:
        return self.spec.label


def read_specs(path: Path) -> list[dict[str, Any]]:
    """The specs of an evaluation tasks file (a YAML list of mappings); errors name the file."""
    specs = read_yaml_file(path, "evaluation tasks file")
    if not isinstance(specs, list):
        raise EvalSpecError(
            f"{path}: expected a YAML list of task specs (- task: NAME ...), got {type(specs).__name__}"
        )
    try:
        parse_specs(specs)
    except EvalSpecError as err:
        raise EvalSpecError(f"{path}: {err}") from None
    return specs


def parse_specs(specs: Sequence[Mapping[str, Any]]) -> list[EvalTaskSpec]:
    """Validate user specs; errors name the spec by position (``tasks[1].limit: ...``)."""
    parsed = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, Mapping):
            raise EvalSpecError(f"tasks[{index}]: expected a mapping with a 'task' key, got {spec!r}")
        try:
            parsed.append(EvalTaskSpec.model_validate(dict(spec)))
        except ValidationError as err:
            problems = "; ".join(f"tasks[{index}].{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise EvalSpecError(problems) from None
    for index, spec in enumerate(parsed):
        if spec.scorer not in EVAL_SCORERS:
            known = ", ".join(EVAL_SCORERS.names())
            raise EvalSpecError(f"tasks[{index}].scorer: unknown scorer {spec.scorer!r}; known: {known}")
        if EVAL_SCORERS.get(spec.scorer).needs_judge and not spec.judge:
            raise EvalSpecError(
                f"tasks[{index}].judge: scorer {spec.scorer!r} needs a judge (a member name or a model)"
            )
    labels = [s.label for s in parsed]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise EvalSpecError(f"tasks: several specs are labelled {twice}; give each a distinct 'name'")
    return parsed


def run_task_spec(config: SpartaConfig) -> EvalTaskSpec:
    """The default: the run's own instruction set, scored against gold answers."""
    return EvalTaskSpec(task=config.data.task, options=dict(config.data.options))


def _is_run_task(config: SpartaConfig, spec: EvalTaskSpec) -> bool:
    return spec.task == config.data.task and spec.options == dict(config.data.options)


def combat_texts(config: SpartaConfig) -> set[str]:
    """The text of every instruction combat may draw (the train part of the run's own task)."""
    items = load_task(config.data.task, config.data.options)
    train, _ = split_holdout(items, config.data.holdout_fraction, config.run.seed)
    return {x.text.strip() for x in train}


def fine_tuning_texts(config: SpartaConfig) -> set[str]:
    """Every prompt and response the members' initial adapters record having been fine-tuned on.

    Only local adapter directories are read; an adapter without ``sft_examples.jsonl`` records nothing.
    """
    texts: set[str] = set()
    for member in config.pool.members:
        record = Path(member.adapter).expanduser() / SFT_EXAMPLES if member.adapter else None
        if record is not None and record.is_file():
            for row in read_jsonl(record):
                texts.update(str(row.get(key, "")).strip() for key in ("prompt", "response"))
    texts.discard("")
    return texts


def seen_texts(config: SpartaConfig) -> set[str]:
    """Every text the pool saw before or during the run: combat instructions and fine-tuning examples."""
    return combat_texts(config) | fine_tuning_texts(config)


def heldout_items(config: SpartaConfig, spec: EvalTaskSpec, seen: set[str] | None = None) -> list[Instruction]:
    """Every item of the spec's task whose text the pool never saw (``seen_texts``)."""
    items = list(load_task(spec.task, spec.options))
    if _is_run_task(config, spec):
        _, items = split_holdout(items, config.data.holdout_fraction, config.run.seed)
    seen = seen_texts(config) if seen is None else seen
    return [x for x in items if x.text.strip() not in seen]


def choose(items: Sequence[Instruction], limit: int, seed: int, label: str) -> list[Instruction]:
    """``limit`` items picked by a seeded hash of their ids, in their original order."""
    if len(items) <= limit:
        return list(items)
    rank = {x.id: derive_seed(seed, "eval", label, x.id) for x in items}
    keep = set(sorted(rank, key=lambda i: (rank[i], i))[:limit])
    return [x for x in items if x.id in keep]


def resolve_task(config: SpartaConfig, spec: EvalTaskSpec, limit: int | None, seen: set[str] | None = None) -> EvalTask:
    """The spec's held-out items, only those with a gold answer for ``scorer: answer``, capped by the limit.

    The spec's own ``limit`` wins over ``limit``, which wins over ``DEFAULT_LIMIT``.
    """
    items = heldout_items(config, spec, seen)
    needs_gold = EVAL_SCORERS.get(spec.scorer).needs_gold
    if needs_gold:
        items = [x for x in items if x.answer is not None and x.answer_type is not None]
    if not items:
        share = "held-out " if _is_run_task(config, spec) else ""
        hint = " with a gold answer; use scorer: judge for open-ended items" if needs_gold else ""
        raise EvalSpecError(f"task {spec.label!r} has no {share}items{hint}")
    cap = spec.limit or limit or DEFAULT_LIMIT
    return EvalTask(spec, choose(items, cap, config.run.seed, spec.label))
