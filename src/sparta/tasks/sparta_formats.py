"""The instruction sets of the SPARTA authors' repository, read from their files as published (option ``path``).

| task                 | file                             | gold                          | domain       |
|----------------------|----------------------------------|-------------------------------|--------------|
| math                 | easy.jsonl                       | ``answer`` (MATH, "math")     | math         |
| gsm8k                | questions.json                   | none                          | math         |
| com2                 | train.json                       | ``gold`` (free text, "text")  | commonsense  |
| normad               | country_dataset.json (``split``) | ``label`` yes/no/neutral      | culture      |
| knowledge_crosswords | train.json (``split``)           | ``completion`` A-D ("choice") | knowledge    |
| truthfulqa           | data_train.jsonl                 | none                          | truthfulness |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from sparta.records import Instruction
from sparta.tasks.bad_records import BadRecords, OnBadRecord
from sparta.tasks.fields import FieldMap, build_instructions
from sparta.tasks.math_answer import last_boxed
from sparta.tasks.readers import iter_json, iter_jsonl
from sparta.tasks.registry import TASKS, TaskFileNotFoundError, parse_options
from sparta.tasks.upstream import missing_file_message


class PathOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path


PathT = TypeVar("PathT", bound=PathOptions)


def _options(model: type[PathT], options: dict[str, Any], task: str) -> PathT:
    """The task's options; a missing file says what it is and where to get it."""
    opts = parse_options(model, options, task)
    if not opts.path.is_file():
        raise TaskFileNotFoundError(missing_file_message(task, opts.path))
    return opts


class NormadOptions(PathOptions):
    split: Literal["train", "test", "valid"] = "train"


class CrosswordsOptions(PathOptions):
    split: str = "train"


def _boxed_solution(record: Mapping[str, Any]) -> str | None:
    """A few MATH records have a null ``answer``; their worked ``solution`` still ends in \\boxed{...}."""
    solution = record.get("solution")
    return last_boxed(solution) if isinstance(solution, str) else None


@TASKS.register("math")
def load_math(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    opts = _options(PathOptions, options, "math")
    bad = BadRecords(on_bad_record, "math")
    fields = FieldMap(
        prompt_field="problem",
        answer_field="answer",
        answer_type="math",
        domain="math",
        meta_fields=["id", "level", "type", "category"],
    )
    return bad.finish(build_instructions(iter_jsonl(opts.path, bad), fields, "math", bad, _boxed_solution))


@TASKS.register("gsm8k")
def load_gsm8k(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    """The question (``input``) only; the constant ``instruction`` field is not part of the prompt."""
    opts = _options(PathOptions, options, "gsm8k")
    bad = BadRecords(on_bad_record, "gsm8k")
    fields = FieldMap(prompt_field="input", domain="math")
    return bad.finish(build_instructions(iter_json(opts.path), fields, "gsm8k", bad))


@TASKS.register("com2")
def load_com2(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    opts = _options(PathOptions, options, "com2")
    bad = BadRecords(on_bad_record, "com2")
    fields = FieldMap(
        prompt_field="prompt", answer_field="gold", answer_type="text", domain="commonsense", meta_fields=["datasplit"]
    )
    return bad.finish(build_instructions(iter_json(opts.path), fields, "com2", bad))


@TASKS.register("normad")
def load_normad(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    """One split of {split: {id: record}}; ids keep the authors' record ids, e.g. "normad-train-1679"."""
    opts = _options(NormadOptions, options, "normad")
    bad = BadRecords(on_bad_record, "normad")
    fields = FieldMap(prompt_field="instruction", answer_field="label", answer_type="label", domain="culture")
    return bad.finish(build_instructions(iter_json(opts.path, opts.split), fields, f"normad-{opts.split}", bad))


@TASKS.register("knowledge_crosswords")
def load_knowledge_crosswords(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    opts = _options(CrosswordsOptions, options, "knowledge_crosswords")
    bad = BadRecords(on_bad_record, "knowledge_crosswords")
    fields = FieldMap(prompt_field="prompt", answer_field="completion", answer_type="choice", domain="knowledge")
    return bad.finish(build_instructions(iter_json(opts.path, opts.split), fields, "knowledge_crosswords", bad))


@TASKS.register("truthfulqa")
def load_truthfulqa(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    opts = _options(PathOptions, options, "truthfulqa")
    bad = BadRecords(on_bad_record, "truthfulqa")
    fields = FieldMap(prompt_field="question", domain="truthfulness")
    return bad.finish(build_instructions(iter_jsonl(opts.path, bad), fields, "truthfulqa", bad))
