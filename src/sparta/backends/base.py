"""The contract between the round loop and whatever plays the tribe (real LLMs or a simulation).

The pipeline only speaks to a :class:`Tribe`; a backend registers a factory under a name and the
configuration's ``backend.kind`` picks it. Registries here hold lazy ``"module:attr"`` targets, so the names are
checked when the configuration loads and the simulated tribe never pays for importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sparta.records import Instruction, JudgeRequest, Judgment, PreferencePair, Response
from sparta.registry import Registry

if TYPE_CHECKING:
    from sparta.config import MemberConfig, SpartaConfig

Progress = Callable[[int], None]
"""Called with the number of items just finished, to drive a progress bar."""


def _no_progress(_: int) -> None:
    return None


class Tribe(Protocol):
    """A pool of models that can answer, judge and learn."""

    members: list[str]

    def generate(
        self, requests: Sequence[tuple[str, Instruction]], seed: int, progress: Progress = _no_progress
    ) -> list[Response]:
        """Answer each (member, instruction) request; output order follows input order."""
        ...

    def judge(self, requests: Sequence[JudgeRequest], progress: Progress = _no_progress) -> list[Judgment]:
        """Score each response 1-10 as the named judge sees it; unreadable scores are ``None`` with a reason."""
        ...

    def train(
        self, pairs: Sequence[PreferencePair], round_dir: Path, seed: int, progress: Progress = _no_progress
    ) -> dict[str, Any]:
        """Train every member on the round's pairs and save the result under ``round_dir``; returns metrics.

        ``progress`` counts members: it is called with 1 as each member finishes.
        """
        ...

    def load_round(self, round_dir: Path) -> None:
        """Restore the members as they were after the training of the round saved in ``round_dir``."""
        ...


TribeFactory = Callable[["SpartaConfig"], Tribe]

TRIBES: Registry[TribeFactory] = Registry("backend")
"""backend name -> its factory, imported on first use."""

ENGINES: Registry[TribeFactory] = Registry("pool engine")
"""pool.engine -> the factory of a tribe of real models that answers and judges with that engine."""

ENGINES.register("hf", "sparta.backends.hf.tribe:build")
ENGINES.register("vllm", "sparta.backends.vllm.tribe:build")

LEARNERS: Registry[TribeFactory] = Registry("placement")
"""placement -> the factory of what trains the members for an engine that only answers and judges (the vLLM
engine delegates ``train`` and ``load_round`` to it, and reads the members' tokenizers and chat templates from its
``pool``). Today one placement: local, the HF tribe in this process."""

LEARNERS.register("local", "sparta.backends.hf.tribe:build")


def build_engine(config: SpartaConfig) -> Tribe:
    """The tribe of real models whose answering and judging engine ``pool.engine`` names."""
    return ENGINES.get(config.pool.engine)(config)


TRIBES.register("simulated", "sparta.backends.simulated:build")
TRIBES.register("hf", "sparta.backends.base:build_engine")

JUDGES: Registry[Any] = Registry("judge type")
"""judge type -> the class that scores with it on the HF engine (``sparta.backends.hf.judges``)."""

JUDGES.register("generate", "sparta.backends.hf.judges:GenerateJudge")
JUDGES.register("logprob", "sparta.backends.hf.judges:LogprobJudge")
JUDGES.register("likelihood", "sparta.backends.hf.judges:LikelihoodJudge")


def outside_judges(config: SpartaConfig) -> list[MemberConfig]:
    """Judges that are no pool member (``tournament.judges=external``), as pool entries that never answer or train.

    The external judge defaults to the first member's model with no adapter and no system prompt: the base model.
    """
    from sparta.config import MemberConfig
    from sparta.tournament.panels import EXTERNAL_JUDGE, OUTSIDE_PANELS

    if config.tournament.judges not in OUTSIDE_PANELS:
        return []
    external = config.judge.external
    model = external.model or config.pool.members[0].model
    member = MemberConfig(name=EXTERNAL_JUDGE, model=model, adapter=external.adapter)
    return [member.model_copy(update={"system_prompt": external.system_prompt})]


def build_tribe(config: SpartaConfig) -> Tribe:
    """Build the tribe named by ``config.backend.kind``."""
    return TRIBES.get(config.backend.kind)(config)


def bind_run(tribe: Tribe, run_dir: Path) -> None:
    """Tell a tribe that keeps files of its own in the run directory (a server's log, initial adapters) where it is.

    Optional for a tribe: one without a ``bind_run`` method keeps nothing there.
    """
    bind = getattr(tribe, "bind_run", None)
    if bind is not None:
        bind(Path(run_dir))
