"""Read raw records from JSONL, JSON and CSV files, each with the line it starts on.

JSON files are parsed by the standard library; a light scan of their structure (strings and brackets only)
finds the line each record starts on, so a record in a big JSON array or object still gets a line number for its
error messages. A malformed JSONL line is a bad record (it can be skipped); a malformed JSON or CSV file cannot
be resynchronised and always raises.
"""

from __future__ import annotations

import bisect
import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sparta.tasks.bad_records import BadRecords, Location, TaskDataError
from sparta.tasks.registry import TaskFileNotFoundError

RawRecord = tuple[Location, Any]

# Stands in for a record that could not be parsed (already reported), so later records keep their positions.
UNREADABLE = object()

_WHITESPACE = re.compile(r"[ \t\n\r]*")


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text; a missing or undecodable file names itself."""
    if not path.is_file():
        raise TaskFileNotFoundError(f"no such task file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TaskDataError(Location(str(path)), "<file>", f"not UTF-8 text ({e.reason} at byte {e.start})") from None


def iter_jsonl(path: Path, bad: BadRecords) -> Iterator[RawRecord]:
    """One JSON value per non-blank line; a malformed line is reported and yields ``UNREADABLE``."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        location = Location(str(path), number)
        try:
            yield location, json.loads(line)
        except json.JSONDecodeError as e:
            bad.report(location, "<json>", f"malformed JSON line: {e.msg} (column {e.colno})")
            yield location, UNREADABLE


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')
"""A JSON string or a structural character: all a scan for where values start needs to see."""


class _Object(dict):
    """A parsed JSON object that also keeps its members in order, repeated keys included."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _value_starts(text: str, opening: int) -> list[int]:
    """Offsets where the values directly inside the array or object opening at ``text[opening]`` start."""
    container, starts, depth = text[opening], [], 0
    separator = "," if container == "[" else ":"
    for match in _TOKEN.finditer(text, opening):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth == 1 and container == "[":
                starts.append(_WHITESPACE.match(text, match.end()).end())
        elif token in "]}":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and token == separator:
            starts.append(_WHITESPACE.match(text, match.end()).end())
    return starts


def _parse(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_Object)
    except json.JSONDecodeError as e:
        raise TaskDataError(
            Location(source, e.lineno), "<json>", f"malformed JSON: {e.msg} (column {e.colno})"
        ) from None


def _records_at(data: Any, text: str, opening: int, source: str) -> Iterator[RawRecord]:
    """The records of the array or object ``data``, which starts at ``text[opening]``, each with its line."""
    line_of = _LineIndex(text)
    starts = _value_starts(text, opening)
    if isinstance(data, list):
        for start, record in zip(starts, data):
            yield Location(source, line_of(start)), record
    elif isinstance(data, _Object):
        for start, (key, record) in zip(starts, data.pairs):
            yield Location(source, line_of(start), key), record
    else:
        found = type(data).__name__
        raise TaskDataError(
            Location(source, line_of(opening)),
            "<json>",
            f"expected a list of records or an object of records, found {found}",
        )


class _LineIndex:
    """Offset -> 1-based line number, by bisection over the newline offsets."""

    def __init__(self, text: str) -> None:
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    def __call__(self, offset: int) -> int:
        return bisect.bisect_right(self._newlines, offset - 1) + 1


def iter_json(path: Path, records_key: str | None = None) -> Iterator[RawRecord]:
    """The records of a JSON array or of an object of key -> record; ``records_key`` first descends into that member.

    The stdlib parses the file; a light scan of its structure finds the line where each record starts.
    """
    source = str(path)
    text = read_text(path)
    data = _parse(text, source)
    opening = _WHITESPACE.match(text).end()
    if records_key is not None:
        if not isinstance(data, _Object) or records_key not in data:
            keys = list(data) if isinstance(data, _Object) else []
            raise TaskDataError(Location(source), records_key, f"no such top-level key; found {keys}")
        index = next(i for i, (key, _) in enumerate(data.pairs) if key == records_key)
        opening, data = _value_starts(text, opening)[index], data.pairs[index][1]
    yield from _records_at(data, text, opening, source)


def iter_csv(path: Path) -> Iterator[RawRecord]:
    """One record per CSV row, keyed by the header row; the line is where the row starts."""
    source = str(path)
    lines = read_text(path).splitlines(keepends=True)
    reader = csv.DictReader(lines)
    try:
        _ = reader.fieldnames  # reads the header, which may span several lines
        next_line = reader.line_num + 1
        for row in reader:
            yield Location(source, next_line), row
            next_line = reader.line_num + 1
    except csv.Error as e:
        raise TaskDataError(Location(source, reader.line_num), "<csv>", f"malformed CSV: {e}") from None
