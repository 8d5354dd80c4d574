"""A task made of other tasks: combat on several instruction sets at once (e.g. procedural + MATH)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sparta.records import Instruction
from sparta.tasks.bad_records import OnBadRecord
from sparta.tasks.registry import TASKS, TaskError, load_task, parse_options


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(None, ge=1, description="keep at most this many items (a seeded choice)")


class MixtureOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parts: list[Part] = Field(..., min_length=1)
    seed: int = 0


@TASKS.register("mixture")
def load_mixture(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    """The parts' instructions one after the other; ids must not collide across parts."""
    opts = parse_options(MixtureOptions, options, "mixture")
    items: list[Instruction] = []
    for i, part in enumerate(opts.parts):
        loaded = list(load_task(part.task, part.options, on_bad_record=on_bad_record))
        if part.limit is not None and len(loaded) > part.limit:
            chosen = sorted(random.Random(f"{opts.seed}/{i}/{part.task}").sample(range(len(loaded)), part.limit))
            loaded = [loaded[j] for j in chosen]
        items.extend(loaded)
    dupes = sorted(instruction_id for instruction_id, count in Counter(x.id for x in items).items() if count > 1)
    if dupes:
        raise TaskError(
            f"task 'mixture': instruction ids collide across parts, e.g. {dupes[:3]}; set id_prefix per part"
        )
    return items
