"""Read what each tracker wrote with that library's own reader, as {metric: [(step, value), ...]} in logged order.

W&B (0.31) ships no Python reader of its offline files: they are LevelDB-style log records (32 KiB blocks, 7-byte
record headers) after a 7-byte ``:W&B`` header, each record one of W&B's own ``Record`` protobufs.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

Series = dict[str, list[tuple[int, float]]]

AXES = ("round", "eval_round")


def tensorboard_series(directory: Path) -> Series:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }


def _wandb_records(path: Path):
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL, FIRST start a record; MIDDLE, LAST extend it
        if kind in (1, 4):
            yield pending
            pending = b""


def wandb_series(directory: Path) -> tuple[Series, list[str]]:
    """History of every offline run file under ``directory`` (one per process), and the run ids they belong to."""
    from wandb.proto import wandb_internal_pb2

    series: Series = defaultdict(list)
    run_ids = []
    for path in sorted(directory.glob("wandb/offline-run-*/run-*.wandb")):
        for raw in _wandb_records(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run_ids.append(record.run.run_id)
            if kind != "history":
                continue
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            axis = next(a for a in AXES if a in row)
            for name, value in row.items():
                if not name.startswith("_") and name not in AXES:
                    series[name].append((row[axis], value))
    return dict(series), run_ids


def mlflow_series(directory: Path, experiment: str) -> tuple[Series, int]:
    """Every metric's history of the experiment's only run, and how many runs the experiment has."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{directory / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    run = runs[0]
    series = {
        name: [(point.step, point.value) for point in client.get_metric_history(run.info.run_id, name)]
        for name in run.data.metrics
    }
    return series, len(runs)


def trackio_series(directory: Path, project: str, run_name: str) -> Series:
    """Trackio reads ``TRACKIO_DIR`` once per process, so its reader runs in a process of its own."""
    code = (
        "import json, sys; from trackio.sqlite_storage import SQLiteStorage; "
        "print(json.dumps(SQLiteStorage.get_logs(sys.argv[1], sys.argv[2])))"
    )
    env = {**os.environ, "TRACKIO_DIR": str(directory)}
    done = subprocess.run([sys.executable, "-c", code, project, run_name], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    series: Series = defaultdict(list)
    for row in json.loads(done.stdout.strip().splitlines()[-1]):
        for name, value in row.items():
            if name not in ("step", "timestamp") and isinstance(value, (int, float)):
                series[name].append((row["step"], value))
    return dict(series)
