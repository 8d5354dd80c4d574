"""Finished (round, task, member) evaluations on disk, so an interrupted evaluation resumes where it stopped.

Each result is one atomically written file, ``eval_cache/round_RRR/TASK/MEMBER.json``, holding a fingerprint of
everything the result depends on (items, generation length, scorer, judge, the member's model and adapter
weights). A file whose fingerprint differs from the current one is stale and is recomputed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sparta.rundir import read_json, round_dir, write_json

CACHE_DIR = "eval_cache"


def fingerprint(parts: dict[str, Any]) -> str:
    """A digest of JSON-serialisable ``parts`` (key order does not matter)."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """Per (round, task, member) rows under ``run_dir/eval_cache``."""

    def __init__(self, run_dir: Path) -> None:
        self.root = Path(run_dir) / CACHE_DIR

    def path(self, r: int, task: str, member: str) -> Path:
        return round_dir(self.root, r) / task / f"{member}.json"

    def load(self, r: int, task: str, member: str, key: str) -> list[dict[str, Any]] | None:
        """The cached rows, or None when there are none or they were made under another fingerprint."""
        path = self.path(r, task, member)
        if not path.is_file():
            return None
        try:
            data = read_json(path)
        except (OSError, ValueError):
            return None  # a damaged cache entry is only lost work
        if not isinstance(data, dict) or data.get("fingerprint") != key:
            return None
        return list(data["rows"])

    def save(self, r: int, task: str, member: str, key: str, rows: list[dict[str, Any]]) -> None:
        write_json(
            self.path(r, task, member),
            {"round": r, "task": task, "member": member, "fingerprint": key, "rows": rows},
        )
