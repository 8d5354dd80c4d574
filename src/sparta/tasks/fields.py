"""Turn raw records into Instructions through a field mapping, reporting every bad record with its field.

A field is a record key, or a dotted path into nested records when no key has that name: ``messages.0.content``
is the first message's text in a chat-format record (Tulu-v2, ShareGPT); a number indexes a list.

Ids are ``{id_prefix}-{natural id}``: the ``id_field`` value, else the record's key in a JSON object, else its
zero-padded position among the records of the source (bad ones included, blank JSONL lines not), so ids
do not move when a record is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from sparta.records import Instruction
from sparta.tasks.bad_records import BadRecords, Location
from sparta.tasks.readers import UNREADABLE, RawRecord
from sparta.tasks.scorers import SCORERS

# A last resort for a missing gold answer (e.g. read it from a worked solution); returns None when it cannot.
GoldFallback = Callable[[Mapping[str, Any]], "str | None"]


class FieldMap(BaseModel):
    """Which record fields hold the prompt, the gold answer and the id, and what the instructions are about."""

    model_config = ConfigDict(extra="forbid")

    prompt_field: str
    answer_field: str | None = None
    answer_type: str | None = None
    id_field: str | None = None
    id_prefix: str | None = None
    domain: str = "general"
    meta_fields: list[str] = []

    @field_validator("answer_type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value not in SCORERS:
            raise ValueError(f"unknown answer_type {value!r}; known: {', '.join(SCORERS.names())}")
        return value

    @model_validator(mode="after")
    def _answer_pair(self) -> FieldMap:
        if self.answer_type is not None and self.answer_field is None:
            raise ValueError("answer_type needs answer_field (the field holding the gold answer)")
        if self.answer_field is not None and self.answer_type is None:
            self.answer_type = "text"
        return self


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_MISSING = object()


def field_value(record: Mapping[str, Any], field: str) -> Any:
    """``record[field]``, else the value at the dotted path ``field`` (list steps are indices); a missing object."""
    if field in record:
        return record[field]
    value: Any = record
    for step in field.split("."):
        if isinstance(value, Mapping) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _MISSING
    return value


def _string_field(record: Mapping[str, Any], field: str, location: Location, bad: BadRecords) -> str | None:
    value = field_value(record, field)
    if value is _MISSING or value is None:
        bad.report(location, field, "missing")
        return None
    if not isinstance(value, str):
        bad.report(location, field, f"expected a string, got {_describe(value)}")
        return None
    if not value.strip():
        bad.report(location, field, "empty")
        return None
    return value


def _scalar_field(record: Mapping[str, Any], field: str, location: Location, bad: BadRecords) -> str | None:
    """A string, or a number read as its text (JSON golds like 42 or ids like 7)."""
    value = field_value(record, field)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return _string_field(record, field, location, bad)


def _gold(
    record: Mapping[str, Any], fields: FieldMap, location: Location, bad: BadRecords, fallback: GoldFallback | None
) -> str | None:
    assert fields.answer_field is not None and fields.answer_type is not None
    raw = fallback(record) if fallback is not None and record.get(fields.answer_field) is None else None
    if raw is None:
        raw = _scalar_field(record, fields.answer_field, location, bad)
    if raw is None:
        return None
    try:
        return SCORERS.get(fields.answer_type).check_gold(raw)
    except ValueError as e:
        bad.report(location, fields.answer_field, str(e))
        return None


def build_instructions(
    records: Iterable[RawRecord],
    fields: FieldMap,
    id_prefix: str,
    bad: BadRecords,
    gold_fallback: GoldFallback | None = None,
) -> list[Instruction]:
    """One Instruction per good record, in source order; bad records go to ``bad`` (raise or skip)."""
    instructions: list[Instruction] = []
    first_seen: dict[str, Location] = {}
    for position, (location, record) in enumerate(records):
        if record is UNREADABLE:
            continue
        if not isinstance(record, Mapping):
            bad.report(location, "<record>", f"expected an object, got {_describe(record)}")
            continue
        prompt = _string_field(record, fields.prompt_field, location, bad)
        if prompt is None:
            continue
        if fields.id_field is not None:
            natural = _scalar_field(record, fields.id_field, location, bad)
            if natural is None:
                continue
        else:
            natural = location.key if location.key is not None else f"{position:05d}"
        answer = None
        if fields.answer_field is not None:
            answer = _gold(record, fields, location, bad, gold_fallback)
            if answer is None:
                continue
        instruction_id = f"{id_prefix}-{natural}" if id_prefix else natural
        if instruction_id in first_seen:
            first = first_seen[instruction_id]
            bad.report(location, fields.id_field or "<id>", f"duplicate id {instruction_id!r} (first at {first})")
            continue
        first_seen[instruction_id] = location
        meta = {name: field_value(record, name) for name in fields.meta_fields}
        meta = {name: value for name, value in meta.items() if value is not _MISSING}
        instructions.append(
            Instruction(
                id=instruction_id,
                text=prompt,
                domain=fields.domain,
                answer=answer,
                answer_type=fields.answer_type,
                meta=meta,
            )
        )
    return instructions
