"""The gold check's summary rows as table cells: a rate, its interval and the pairs behind it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparta.judge_validity import KINDS

COLUMNS = {
    "decided": "right answer preferred",
    "temperature": "lower temperature preferred",
    "length": "shorter preferred",
}
"""Column titles: what each kind's rate counts (0.5: chance or no bias)."""


def rate_cell(summary: dict[str, Any], key: str = "rate") -> str:
    """``0.62 [0.55, 0.70] (n=48)``, or ``-`` without pairs."""
    rate = summary[key]
    if rate["score"] is None:
        return "-"
    return f"{rate['score']:.2f} [{rate['low']:.2f}, {rate['high']:.2f}] (n={summary['pairs']})"


def gold_table_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """One printable row per judge type: per-judgment rates, the decided panel rate, failures and speed."""
    table = []
    for row in rows:
        cells = {"judge type": row["judge_type"]}
        cells.update({COLUMNS[kind]: rate_cell(row[kind]) for kind in KINDS})
        cells["panel: right preferred"] = rate_cell(row["decided"], "panel")
        failures = sum(row[kind]["failures"] for kind in KINDS)
        judgments = sum(row[kind]["judgments"] for kind in KINDS)
        cells["failures"] = f"{failures}/{judgments}"
        cells["judgments/s"] = f"{row['judgments_per_s']:.2f}"
        table.append(cells)
    return table


def best_gold_type(rows: Sequence[dict[str, Any]]) -> str | None:
    """The judge type most often preferring the right answer on decided pairs; None without decided pairs."""
    judged = [row for row in rows if row["decided"]["rate"]["score"] is not None]
    if not judged:
        return None
    return max(judged, key=lambda row: (row["decided"]["rate"]["score"], row["judgments_per_s"]))["judge_type"]
