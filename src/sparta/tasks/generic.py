"""Generic instruction sets: any JSONL, JSON, CSV file or Hugging Face dataset, read through a field mapping.

Options (all loaders): ``prompt_field``; optional ``answer_field`` + ``answer_type`` (a scorer name; "text" when
only the field is given), ``id_field``, ``id_prefix`` (default: the file stem), ``domain``, ``meta_fields``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sparta.records import Instruction
from sparta.tasks.bad_records import BadRecords, Location, OnBadRecord
from sparta.tasks.fields import FieldMap, build_instructions
from sparta.tasks.readers import RawRecord, iter_csv, iter_json, iter_jsonl
from sparta.tasks.registry import TASKS, TaskOptionsError, parse_options


class FileOptions(FieldMap):
    path: Path


class JsonOptions(FileOptions):
    records_key: str | None = None  # a top-level key holding the records, e.g. "train"


class HFDatasetOptions(FieldMap):
    path: str  # a hub dataset name, or a local directory written by save_to_disk
    split: str = "train"
    config_name: str | None = None
    revision: str | None = None


def _file_task(options: FileOptions, records: Iterator[RawRecord], bad: BadRecords) -> list[Instruction]:
    prefix = options.id_prefix if options.id_prefix is not None else options.path.stem
    return bad.finish(build_instructions(records, options, prefix, bad))


@TASKS.register("jsonl")
def load_jsonl(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    """One record per line of a JSONL file."""
    opts = parse_options(FileOptions, options, "jsonl")
    bad = BadRecords(on_bad_record, "jsonl")
    return _file_task(opts, iter_jsonl(opts.path, bad), bad)


@TASKS.register("json")
def load_json(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    """A JSON list of records, or an object of key -> record (keys become ids), optionally under ``records_key``."""
    opts = parse_options(JsonOptions, options, "json")
    bad = BadRecords(on_bad_record, "json")
    return _file_task(opts, iter_json(opts.path, opts.records_key), bad)


@TASKS.register("csv")
def load_csv(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    """A CSV file with a header row; every value is text."""
    opts = parse_options(FileOptions, options, "csv")
    bad = BadRecords(on_bad_record, "csv")
    return _file_task(opts, iter_csv(opts.path), bad)


def _open_dataset(opts: HFDatasetOptions) -> Any:
    try:
        import datasets
    except ImportError as e:
        raise ImportError("the hf_dataset task needs the 'datasets' package: pip install 'sparta-align[llm]'") from e
    local = Path(opts.path)
    saved_markers = ("dataset_dict.json", "dataset_info.json", "state.json")
    if local.is_dir() and any((local / name).exists() for name in saved_markers):
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if opts.split not in loaded:
                known = sorted(loaded)
                raise TaskOptionsError(
                    f"task 'hf_dataset': option 'split': {opts.path} has no split {opts.split!r}; splits: {known}"
                )
            return loaded[opts.split]
        return loaded
    return datasets.load_dataset(opts.path, opts.config_name, split=opts.split, revision=opts.revision)


@TASKS.register("hf_dataset")
def load_hf_dataset(options: dict[str, Any], *, on_bad_record: OnBadRecord = "error") -> list[Instruction]:
    """A Hugging Face dataset split, by hub name (``datasets.load_dataset``) or a ``save_to_disk`` directory."""
    opts = parse_options(HFDatasetOptions, options, "hf_dataset")
    bad = BadRecords(on_bad_record, "hf_dataset")
    dataset = _open_dataset(opts)
    source = f"{opts.path}[{opts.split}]"
    records = ((Location(source, row=i), row) for i, row in enumerate(dataset))
    prefix = opts.id_prefix if opts.id_prefix is not None else f"{Path(opts.path).name}-{opts.split}"
    return bad.finish(build_instructions(records, opts, prefix, bad))
