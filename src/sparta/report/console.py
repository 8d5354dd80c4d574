"""Rich output for the terminal: progress bars for long stages, the leaderboard and summary tables."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# Logs and CI have no terminal: give tables room rather than rich's 80-column default.
console = Console() if sys.stdout.isatty() else Console(width=160)


class RichReporter:
    """Progress bars on every long stage; log lines in between."""

    def __init__(self, out: Console | None = None) -> None:
        self.console = out or console

    @contextmanager
    def stage(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(description, total=total or None)
            yield lambda n: progress.advance(task, n)

    def log(self, message: str) -> None:
        self.console.print(f"[dim]{message}[/dim]")


def format_cell(value: Any, digits: int = 2, missing: str = "-") -> str:
    """A table cell: floats to ``digits`` places, nothing as ``missing``."""
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def leaderboard_table(rows: Sequence[dict[str, Any]], title: str = "Leaderboard") -> Table:
    table = Table(title=title)
    for col in ("rank", "member", "reputation", "Bradley-Terry", "95% CI", "W-L-T"):
        table.add_column(col, justify="right" if col not in ("member",) else "left")
    for r in rows:
        ci = f"{format_cell(r['bt_low'], 0)}..{format_cell(r['bt_high'], 0)}" if r.get("bt_low") is not None else "-"
        table.add_row(
            str(r["rank"]),
            r["member"],
            format_cell(r["reputation"], 4),
            format_cell(r["bt"], 0),
            ci,
            f"{r['wins']}-{r['losses']}-{r['ties']}",
        )
    return table


def rows_table(
    rows: Sequence[dict[str, Any]], title: str, columns: Sequence[str] | None = None, digits: int = 3
) -> Table:
    """A plain table of dict rows (the keys of the first row unless ``columns`` says otherwise)."""
    table = Table(title=title)
    cols = list(columns or (rows[0].keys() if rows else []))
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*[format_cell(r.get(c), digits) for c in cols])
    return table
