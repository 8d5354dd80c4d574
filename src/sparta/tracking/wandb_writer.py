"""Weights & Biases: one W&B run per run directory, offline by default (``wandb sync DIR/wandb/offline-run-*``).

The W&B run id is the run directory's tracking id, so every process that continues the run (and ``sparta eval``)
resumes the same W&B run. Rounds are logged against a ``round`` metric and evaluation scores against
``eval_round`` (``define_metric``), never against W&B's own step counter, which restarts in each offline process.
Offline, W&B is put in offline mode for the whole process (``wandb.setup``): otherwise wandb 0.31 still probes its
server for telemetry at the end of an offline run.
"""

from __future__ import annotations

from collections.abc import Mapping

from sparta.tracking.writers import Axis, WriterSetup, require

FLUSH_SECONDS = 0.25
"""How often W&B writes its run file. Its default, 15 s, lets a killed process lose rounds that the ledger already
counts as logged (they would never be logged again); at 0.25 s a kill loses only a round logged in its last moment."""


class WandbWriter:
    library = "wandb"

    def __init__(self, setup: WriterSetup) -> None:
        wandb = require(self.library, "wandb")
        mode = "offline" if setup.offline else "online"
        if setup.offline:
            wandb.setup(settings=wandb.Settings(mode="offline"))
        quiet = wandb.Settings(
            console="off",
            silent=True,
            x_disable_stats=True,
            disable_git=True,
            disable_code=True,
            x_transaction_log_flush_interval=FLUSH_SECONDS,
        )
        self._run = wandb.init(
            project=setup.project,
            name=setup.name,
            id=setup.run_id,
            resume="allow",
            dir=str(setup.directory),
            mode=mode,
            config=setup.config,
            reinit="create_new",  # beside any run a DPO trainer's report_to=wandb may hold
            settings=quiet,
        )
        self._defined: set[str] = set()

    def log(self, metrics: Mapping[str, float], step: int, axis: Axis) -> None:
        for name in metrics:
            if name not in self._defined:
                self._run.define_metric(name, step_metric=axis)
                self._defined.add(name)
        self._run.log({axis: step, **metrics})

    def close(self) -> None:
        self._run.finish()
