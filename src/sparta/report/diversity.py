"""Diversity per round, measured on the greedy answers ``sparta eval`` wrote (it costs no generation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparta.evaluation.results import RESPONSES_DIR
from sparta.records import Instruction
from sparta.report.files import round_rows


def _answers(folder: Path) -> tuple[dict[str, Instruction], dict[str, dict[str, str]]]:
    """One round's evaluated items (``TASK/ID``) and every member's response to each."""
    items: dict[str, Instruction] = {}
    answers: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for row in round_rows(path):
            item = f"{path.stem}/{row['instruction_id']}"
            items[item] = Instruction(
                id=item,
                text=row["instruction"],
                domain=row.get("domain") or path.stem,
                answer=row.get("gold"),
                answer_type=row.get("answer_type"),
            )
            answers.setdefault(row["member"], {})[item] = row["response"]
    return items, answers


def diversity_per_round(run_dir: Path) -> list[tuple[int, dict[str, Any]]]:
    """(round, diversity measures) for every round ``sparta eval`` answered: who is expert at what, and how often
    members' extracted answers differ."""
    from sparta.pool_init.diversity import diversity_from_answers, verifiable

    base = Path(run_dir) / RESPONSES_DIR
    result = []
    for folder in sorted(base.glob("round_*")) if base.is_dir() else []:
        items, answers = _answers(folder)
        if len(answers) >= 2 and verifiable(list(items.values())):
            result.append((int(folder.name.split("_")[1]), diversity_from_answers(list(items.values()), answers)))
    return result
