"""``sparta export-pairs RUN --out DIR``: every round's preference pairs as one Hugging Face dataset.

    DIR/
      README.md                            the dataset card: the run's configuration, pool, judge, rows per round
      data/train-00000-of-00001.parquet    one row per pair: round, prompt, chosen, rejected, chosen_model,
                                           rejected_model, margin, instruction_id, domain

``datasets.load_dataset(DIR)`` loads it as one ``train`` split; ``prompt``/``chosen``/``rejected`` is TRL's
preference format, so ``ds.filter(lambda row: row["round"] == 3)`` is a round's DPO data. Only rounds whose pairs
are final (their ``ratings`` stage finished) are exported, so exporting a running run is safe. Exporting again into
the same DIR replaces the earlier export; any other non-empty DIR is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparta.config import ConfigError, SpartaConfig, load_config
from sparta.errors import SpartaError
from sparta.pipeline.state import RunState
from sparta.publishing.dataset_card import CARD_TAG, dataset_card
from sparta.rundir import CONFIG_YAML, PAIRS, STATE_JSON, atomic_write_text, read_jsonl, round_dir

DATA_FILE = Path("data") / "train-00000-of-00001.parquet"
CARD = "README.md"
COLUMNS = {
    "round": "int32",
    "prompt": "string",
    "chosen": "string",
    "rejected": "string",
    "chosen_model": "string",
    "rejected_model": "string",
    "margin": "float64",
    "instruction_id": "string",
    "domain": "string",
}


class PairsExportError(SpartaError, ValueError):
    """A run directory that cannot be exported, or an output directory that would be overwritten."""


@dataclass
class PairsExport:
    out: Path
    rows_per_round: dict[int, int]

    @property
    def rows(self) -> int:
        return sum(self.rows_per_round.values())


def _load_run(run_dir: Path) -> tuple[SpartaConfig, RunState]:
    if not (run_dir / CONFIG_YAML).is_file() or not (run_dir / STATE_JSON).is_file():
        raise PairsExportError(f"{run_dir} is not a run directory: it needs {CONFIG_YAML} and {STATE_JSON}")
    try:
        return load_config(run_dir / CONFIG_YAML), RunState.load(run_dir / STATE_JSON)
    except (ConfigError, ValueError) as err:
        raise PairsExportError(f"{run_dir}: {err}") from None


def _check_out(out: Path) -> None:
    """``out`` must be new, empty, or an earlier export (its card and data, nothing else)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PairsExportError(f"--out {out} is a file; name a directory")
    entries = {entry.name for entry in out.iterdir()}
    card = out / CARD
    earlier = entries <= {CARD, "data"} and card.is_file() and CARD_TAG in card.read_text(encoding="utf-8")
    if entries and not earlier:
        raise PairsExportError(f"--out {out} is not empty and holds no earlier export of pairs; choose a new directory")


def pair_rows(run_dir: Path, state: RunState) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Every final pair of every round, in round then file order, with its ``round``."""
    rows: list[dict[str, Any]] = []
    per_round: dict[int, int] = {}
    for round_index in sorted(r for r in state.finished if state.done(r, "ratings")):
        pairs = read_jsonl(round_dir(run_dir, round_index) / PAIRS)
        rows.extend(
            {"round": round_index, **{name: pair[name] for name in COLUMNS if name != "round"}} for pair in pairs
        )
        per_round[round_index] = len(pairs)
    return rows, per_round


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Through ``datasets``, so the file carries the column types that ``load_dataset`` restores; atomically."""
    import datasets

    features = datasets.Features({name: datasets.Value(kind) for name, kind in COLUMNS.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        if bars:
            datasets.enable_progress_bars()


def export_pairs(run_dir: Path, out: Path) -> PairsExport:
    """Write the run's pairs and dataset card into ``out`` (see the module docstring)."""
    run_dir, out = Path(run_dir), Path(out)
    config, state = _load_run(run_dir)
    _check_out(out)
    rows, per_round = pair_rows(run_dir, state)
    if not per_round:
        raise PairsExportError(f"{run_dir} has no round with final pairs yet (no round finished its ratings stage)")
    _write_parquet(rows, out / DATA_FILE)
    atomic_write_text(out / CARD, dataset_card(config, state, per_round))
    return PairsExport(out, per_round)
