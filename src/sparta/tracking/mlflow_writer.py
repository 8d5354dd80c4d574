"""MLflow: one MLflow run per run directory, in a local SQLite store (``mlflow ui --backend-store-uri sqlite:///…``).

MLflow 3 refuses its plain-file store unless told otherwise, and names SQLite as the local store to use instead.
The MLflow run id is created once and kept in the run directory, so every process that continues the run (and
``sparta eval``) logs into the same MLflow run. The configuration is logged as parameters (dotted names).
MLflow's usage telemetry is turned off before MLflow is imported: tracking a run sends nothing anywhere.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from sparta.tracking.writers import Axis, WriterSetup, require

STORE = "mlflow.db"


def _flat_params(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in config.items():
        if isinstance(value, Mapping):
            yield from _flat_params(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value if isinstance(value, str) else json.dumps(value)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MlflowWriter:
    library = "mlflow"

    def __init__(self, setup: WriterSetup) -> None:
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # read when mlflow is first imported
        require(self.library, "mlflow")
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=f"sqlite:///{(setup.directory / STORE).resolve()}")
        experiment = self._client.get_experiment_by_name(setup.project)
        experiment_id = (
            experiment.experiment_id
            if experiment
            else self._client.create_experiment(
                setup.project, artifact_location=(setup.directory / "artifacts").resolve().as_uri()
            )
        )
        if "run_id" in setup.saved:
            self._run_id = setup.saved["run_id"]
            self._client.update_run(self._run_id, status="RUNNING")
        else:
            run = self._client.create_run(experiment_id, run_name=setup.name, tags={"sparta.run_id": setup.run_id})
            self._run_id = setup.saved["run_id"] = run.info.run_id
            self._log_params(setup.config)

    def _log_params(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        params = [Param(name, value[:MAX_PARAM_VAL_LENGTH]) for name, value in _flat_params(config)]
        for batch in _batches(params, MAX_PARAMS_TAGS_PER_BATCH):
            self._client.log_batch(self._run_id, params=batch)

    def log(self, metrics: Mapping[str, float], step: int, axis: Axis) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        stamp = int(time.time() * 1000)
        points = [Metric(name, float(value), stamp, step) for name, value in metrics.items()]
        for batch in _batches(points, MAX_METRICS_PER_BATCH):
            self._client.log_batch(self._run_id, metrics=batch)

    def close(self) -> None:
        self._client.set_terminated(self._run_id)
