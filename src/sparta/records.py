"""The plain records that flow between stages and are written to the run directory.

They are pure data (no torch), shared by the tournament core, the backends and the pipeline.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, TypeVar

RecordT = TypeVar("RecordT", bound="FlatRecord")


class FlatRecord:
    """A record that is one line of a run-directory file, field for field (nested values are plain JSON)."""

    def to_dict(self) -> dict[str, Any]:
        # what asdict gives for fields of plain JSON, without its recursion into every value (a simulated run writes
        # 10^5 records); a dataclass instance's __dict__ holds its fields in definition order
        return {
            name: deepcopy(value) if isinstance(value, (dict, list)) else value for name, value in vars(self).items()
        }

    @classmethod
    def from_dict(cls: type[RecordT], d: dict[str, Any]) -> RecordT:
        return cls(**d)


@dataclass(frozen=True)
class Instruction(FlatRecord):
    """One prompt of an instruction set; ``answer`` is a gold answer when the task has one (evaluation only)."""

    id: str
    text: str
    domain: str = "general"
    answer: str | None = None
    answer_type: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """Two combatants answering one instruction; ``index`` fixes the order of rating updates."""

    index: int
    instruction: Instruction
    model_a: str
    model_b: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "instruction_id": self.instruction.id,
            "instruction": self.instruction.to_dict(),
            "model_a": self.model_a,
            "model_b": self.model_b,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Match:
        return cls(
            index=d["index"],
            instruction=Instruction.from_dict(d["instruction"]),
            model_a=d["model_a"],
            model_b=d["model_b"],
        )


CUT_BY_LENGTH = "length"
"""``Response.meta["finish"]`` of an answer that ``max_new_tokens`` cut: a prefix, not a complete answer."""


@dataclass(frozen=True)
class Response(FlatRecord):
    """One member's answer to one instruction. ``meta`` carries backend facts (token counts, how it finished)."""

    instruction_id: str
    model: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        """The answer was cut by ``max_new_tokens``: it is the prefix of an answer, with no end."""
        return self.meta.get("finish") == CUT_BY_LENGTH


@dataclass(frozen=True)
class JudgeRequest:
    """Ask ``judge`` to score ``response`` (written by ``response.model``) to ``instruction``."""

    judge: str
    instruction: Instruction
    response: Response


@dataclass(frozen=True)
class Judgment(FlatRecord):
    """A judge's 1-10 score of one response, or ``score=None`` with the reason it could not be read."""

    judge: str
    model: str
    instruction_id: str
    score: float | None
    failure: str | None = None
    raw: str | None = None

    @classmethod
    def of(cls, request: JudgeRequest, score: float | None, failure: str | None, raw: str) -> Judgment:
        """The judgment that answers ``request``."""
        return cls(
            judge=request.judge,
            model=request.response.model,
            instruction_id=request.instruction.id,
            score=score,
            failure=failure,
            raw=raw,
        )


@dataclass(frozen=True)
class PreferencePair(FlatRecord):
    """A DPO training example in TRL's preference format plus where it came from; ``*_truncated`` marks an answer
    cut by ``max_new_tokens`` (trained on as the prefix it is, only with ``tournament.truncated: keep``)."""

    prompt: str
    chosen: str
    rejected: str
    chosen_model: str
    rejected_model: str
    margin: float
    instruction_id: str
    domain: str = "general"
    chosen_truncated: bool = False
    rejected_truncated: bool = False
