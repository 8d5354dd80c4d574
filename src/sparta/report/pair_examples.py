"""A few preference pairs to read in the report, spread over the margins so both clear and close calls show."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparta.records import PreferencePair
from sparta.report.files import required, round_rows
from sparta.report.leaderboard import rated_rounds
from sparta.rundir import PAIRS, round_dir

FIELDS = ("prompt", "chosen", "rejected", "chosen_model", "rejected_model", "margin", "instruction_id")


@dataclass(frozen=True)
class PairExample:
    """A kept preference pair and the round that kept it."""

    round: int
    pair: PreferencePair


def spread_by_margin(pairs: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` pairs evenly spaced over the margin ranking (largest first), so both clear and close calls show."""
    ranked = sorted(pairs, key=lambda p: -float(p["margin"]))
    if len(ranked) <= n:
        return ranked
    if n == 1:
        return ranked[:1]
    return [ranked[round(i * (len(ranked) - 1) / (n - 1))] for i in range(n)]


def _pair(row: dict[str, Any]) -> PreferencePair:
    fields = {key: row[key] for key in FIELDS} | {"margin": float(row["margin"])}
    cut = {key: bool(row.get(key, False)) for key in ("chosen_truncated", "rejected_truncated")}
    return PreferencePair(**fields, **cut, domain=row.get("domain", "general"))


def preference_examples(run_dir: Path, n: int = 4) -> list[PairExample]:
    """A few pairs of the last rated round that kept any (the data the pool trains on last)."""
    for round_index in reversed(rated_rounds(run_dir)):
        path = round_dir(run_dir, round_index) / PAIRS
        pairs = round_rows(path)
        for number, pair in enumerate(pairs, 1):
            for key in FIELDS:
                required(pair, key, f"{path} record {number}")
        if pairs:
            return [PairExample(round=round_index, pair=_pair(p)) for p in spread_by_margin(pairs, n)]
    return []
