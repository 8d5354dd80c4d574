"""Each member's SFT subset as (prompt, response) examples, one loader per ``subset.source``.

``procedural`` draws worked correct answers of one built-in domain; ``records`` reads instruction/response records
through a registered task loader (so files get the same field checks and file:line errors as instruction sets),
optionally keeps those whose fields equal ``where``, and caps them with a sample seeded per member.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from sparta.pool_init.config import InitMember, ProceduralSubset, RecordsSubset
from sparta.registry import Registry
from sparta.seeding import derive_seed


@dataclass(frozen=True)
class Example:
    prompt: str
    response: str


SubsetLoader = Callable[..., list[Example]]
SUBSETS: Registry[SubsetLoader] = Registry("subset source")


@SUBSETS.register("procedural")
def procedural_subset(spec: ProceduralSubset, seed: int, member: str) -> list[Example]:
    from sparta.tasks import procedural_expert_examples

    pairs = procedural_expert_examples(spec.domain, spec.size, seed if spec.seed is None else spec.seed)
    return [Example(prompt, response) for prompt, response in pairs]


def _matches(meta: dict, where: dict) -> bool:
    """Field values compare as text, so ``where: {level: 2}`` matches a record's 2 and "2" alike."""
    return all(field in meta and str(meta[field]) == str(value) for field, value in where.items())


@SUBSETS.register("records")
def records_subset(spec: RecordsSubset, seed: int, member: str) -> list[Example]:
    from sparta.tasks import TaskError, load_task

    options = {
        **spec.options,
        "prompt_field": spec.prompt_field,
        "answer_field": spec.response_field,
        "answer_type": "text",
        "meta_fields": sorted(spec.where),
    }
    records = [r for r in load_task(spec.task, options) if _matches(r.meta, spec.where)]
    if not records:
        where = f" with {spec.where}" if spec.where else ""
        raise TaskError(f"member {member!r}: task {spec.task!r} {spec.options} has no records{where}")
    if spec.size is not None and spec.size < len(records):
        picked = sorted(random.Random(derive_seed(seed, "subset", member)).sample(range(len(records)), spec.size))
        records = [records[i] for i in picked]
    return [Example(r.text, r.answer or "") for r in records]


def member_examples(member: InitMember, seed: int) -> list[Example]:
    """The member's SFT examples, in a deterministic order."""
    return SUBSETS.get(member.subset.source)(member.subset, seed, member.name)
