"""The Hugging Face tribe: the :class:`~sparta.backends.base.Tribe` contract over a :class:`ModelPool`.

It only composes: generation (``generation.generate``), the judge chosen by ``judge.type`` (``judges.JUDGES``)
and DPO per member (``training.train_member``). Judges and training are imported when first used, so answering
does not pay for importing TRL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sparta.backends.base import Progress, _no_progress, outside_judges
from sparta.backends.hf.answer_logps import round_references
from sparta.backends.hf.generation import generate
from sparta.backends.hf.pool import ModelPool
from sparta.config import SpartaConfig
from sparta.records import Instruction, JudgeRequest, Judgment, PreferencePair, Response
from sparta.rundir import ADAPTERS, PRECISION_JSON, RunFileMissingError, adapter_dir, write_json
from sparta.seeding import derive_seed


class HFTribe:
    """A pool of LoRA members over shared base models that answers, judges and trains."""

    def __init__(self, config: SpartaConfig) -> None:
        self.config = config
        # an outside judge (tournament.judges=external) joins the pool to judge; it never answers or trains
        entries = config.pool.model_copy(update={"members": [*config.pool.members, *outside_judges(config)]})
        self.pool = ModelPool(entries, config.training.lora, config.run.seed)
        self.members: list[str] = config.member_names()
        self._judge: Any = None

    def bind_run(self, run_dir: Path) -> None:
        """With pool.dtype auto, record in the run directory which dtype was chosen on this machine and why."""
        if self.pool.dtype_choices:
            choices = {name: asdict(choice) for name, choice in self.pool.dtype_choices.items()}
            write_json(Path(run_dir) / PRECISION_JSON, choices)

    def generate(
        self, requests: Sequence[tuple[str, Instruction]], seed: int, progress: Progress = _no_progress
    ) -> list[Response]:
        return generate(self.pool, requests, seed, self.config.pool.generation_batch_size, progress)

    def judge(self, requests: Sequence[JudgeRequest], progress: Progress = _no_progress) -> list[Judgment]:
        if self._judge is None:
            from sparta.backends.base import JUDGES

            self._judge = JUDGES.get(self.config.judge.type)(self.pool, self.config.judge)
        return self._judge.score(requests, progress)

    def train(
        self, pairs: Sequence[PreferencePair], round_dir: Path, seed: int, progress: Progress = _no_progress
    ) -> dict[str, Any]:
        """Train every member on all the round's pairs, one after the other; ``progress(1)`` per member."""
        per_member = {}
        judged = round_references(round_dir)
        for member in self.members:
            per_member[member] = self.train_one(member, pairs, round_dir, seed, judged.get(member, {}))
            progress(1)
        return {"pairs": len(pairs), "members": per_member}

    def train_one(
        self,
        member: str,
        pairs: Sequence[PreferencePair],
        round_dir: Path,
        seed: int,
        judged: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """Train one member on all the round's pairs (``seed``: the round's) and save its adapter under ``round_dir``.

        A member's result depends on nothing but the pool as it was at the start of the round and the reference
        log-probabilities its judging wrote to the round's judgments (``judged``: ``answer_logps.round_references``),
        so members may be trained in any order, or in other processes holding the same pool.
        """
        from sparta.backends.hf.training import train_member

        # clones train with their original's seed so that they stay one model
        key = self.pool.member_config(member).clone_of or member
        member_seed = derive_seed(seed, "train", key) % 2**31  # numpy, under set_seed, wants 32 bits
        out_dir = adapter_dir(round_dir, member)
        return train_member(self.pool, member, pairs, out_dir, self.config.training, member_seed, judged=judged)

    def load_round(self, round_dir: Path) -> None:
        """Give every member the adapter saved by :meth:`train` in ``round_dir``."""
        missing = [m for m in self.members if not adapter_dir(round_dir, m).is_dir()]
        if missing:
            raise RunFileMissingError(f"{Path(round_dir) / ADAPTERS}: no adapter for members {missing}")
        for member in self.members:
            self.pool.load_adapter(member, adapter_dir(round_dir, member))


def build(config: SpartaConfig) -> HFTribe:
    """The factory registered as backend ``hf``."""
    return HFTribe(config)
