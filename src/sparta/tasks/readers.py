"""Read raw records from JSONL, JSON and CSV files, each with the line it starts on.

JSON files are walked element by element (``JSONDecoder.raw_decode``), so a record in a big JSON array or
object still gets a line number for its error messages. A malformed JSONL line is a bad record (it can be
skipped); a malformed JSON or CSV file cannot be resynchronised and always raises.
"""

from __future__ import annotations

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


class _JsonCursor:
    """A position in a JSON document that can step over values and tell the current line."""

    def __init__(self, text: str, source: str) -> None:
        self.text, self.source, self.pos = text, source, 0
        self._decoder = json.JSONDecoder()
        self._line_pos, self._line = 0, 1

    def line(self) -> int:
        self._line += self.text.count("\n", self._line_pos, self.pos)
        self._line_pos = self.pos
        return self._line

    def peek(self) -> str:
        self.pos = _WHITESPACE.match(self.text, self.pos).end()
        return self.text[self.pos : self.pos + 1]

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def value(self) -> Any:
        self.peek()
        try:
            value, self.pos = self._decoder.raw_decode(self.text, self.pos)
        except json.JSONDecodeError as e:
            raise TaskDataError(
                Location(self.source, e.lineno), "<json>", f"malformed JSON: {e.msg} (column {e.colno})"
            ) from None
        return value

    def fail(self, expected: str) -> TaskDataError:
        found = self.peek() or "end of file"
        return TaskDataError(Location(self.source, self.line()), "<json>", f"expected {expected}, found {found!r}")

    def members(self) -> Iterator[tuple[int, str]]:
        """Walk an object; yields (line, key) with the cursor on that value, which the caller must consume."""
        if not self.take("{"):
            raise self.fail("'{'")
        if self.take("}"):
            return
        while True:
            if self.peek() != '"':
                raise self.fail("a string key")
            key = self.value()
            if not self.take(":"):
                raise self.fail("':'")
            self.peek()
            yield self.line(), key
            if self.take("}"):
                return
            if not self.take(","):
                raise self.fail("',' or '}'")

    def items(self) -> Iterator[int]:
        """Walk an array; yields each element's line with the cursor on it, which the caller must consume."""
        if not self.take("["):
            raise self.fail("'['")
        if self.take("]"):
            return
        while True:
            self.peek()
            yield self.line()
            if self.take("]"):
                return
            if not self.take(","):
                raise self.fail("',' or ']'")


def iter_json(path: Path, records_key: str | None = None) -> Iterator[RawRecord]:
    """The records of a JSON array or of an object of key -> record; ``records_key`` first descends into that member."""
    source = str(path)
    cursor = _JsonCursor(read_text(path), source)
    if records_key is not None:
        keys: list[str] = []
        for _, key in cursor.members():
            if key == records_key:
                break
            keys.append(key)
            cursor.value()
        else:
            raise TaskDataError(Location(source), records_key, f"no such top-level key; found {keys}")
    if cursor.peek() == "[":
        for line in cursor.items():
            yield Location(source, line), cursor.value()
    elif cursor.peek() == "{":
        for line, key in cursor.members():
            yield Location(source, line, key), cursor.value()
    else:
        raise cursor.fail("a list of records or an object of records")


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
