"""What a simulated run is scored by against the truth only the simulation knows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sparta.rundir import PAIRS, RESPONSES, read_jsonl, round_dir


def label_accuracy(run_dir: Path, rounds: int) -> tuple[float, int]:
    """Share of kept pairs whose chosen response has the higher latent quality, and the number of pairs."""
    right = total = 0
    for round_index in range(1, rounds + 1):
        round_path = round_dir(run_dir, round_index)
        quality = {(x["instruction_id"], x["model"]): x["meta"]["quality"] for x in read_jsonl(round_path / RESPONSES)}
        for pair in read_jsonl(round_path / PAIRS):
            iid = pair["instruction_id"]
            right += quality[(iid, pair["chosen_model"])] > quality[(iid, pair["rejected_model"])]
            total += 1
    return (right / total if total else float("nan")), total


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing the mean of the ranks they span."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    ranks = np.empty(len(array))
    start = 0
    while start < len(array):
        end = start
        while end + 1 < len(array) and array[order[end + 1]] == array[order[start]]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's on average ranks); NaN when either side is constant.

    Written here because importing scipy.stats for it took longer than a whole simulated round.
    """
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum()) / denominator if denominator > 0 else float("nan")
