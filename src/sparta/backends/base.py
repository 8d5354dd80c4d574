"""The contract between the round loop and whatever plays the tribe (real LLMs or a simulation).

The pipeline only speaks to a :class:`Tribe`; a backend registers a factory under a name and the
configuration's ``backend.kind`` picks it. Registries here hold lazy ``"module:attr"`` targets, so the names are
checked when the configuration loads and the simulated tribe never pays for importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
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
        """Answer each (member, instruction) request; output order follows input order.

        ``seed`` is the stage's (run seed and round); each answer samples from a stream of its own derived from it,
        the member and the instruction id, so the answers do not depend on how requests are chunked or batched.
        """
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

ENGINES.register("hf", "sparta.backends.base:build_placed")
ENGINES.register("vllm", "sparta.backends.vllm.tribe:build")

PLACEMENTS: Registry[TribeFactory] = Registry("placement")
"""backend.placement -> the factory of the HF tribe placed there: local (this process) or ray (data-parallel Ray
workers, ``sparta.backends.ray``). The ``hf`` engine is this tribe."""

PLACEMENTS.register("local", "sparta.backends.hf.tribe:build")
PLACEMENTS.register("ray", "sparta.backends.ray.tribe:build")

LEARNERS: Registry[TribeFactory] = Registry("placement")
"""backend.placement -> the factory of what trains the members for an engine that only answers and judges (the vLLM
engine delegates ``train`` and ``load_round`` to it, and reads the members' tokenizers and chat templates from its
``pool``): local, the HF tribe in this process; ray, Ray workers that train (``RayLearner``). Same names as
:data:`PLACEMENTS`, so every placement works with every engine."""

LEARNERS.register("local", "sparta.backends.hf.tribe:build")
LEARNERS.register("ray", "sparta.backends.ray.learner:build")


def build_engine(config: SpartaConfig) -> Tribe:
    """The tribe of real models whose answering and judging engine ``pool.engine`` names."""
    return ENGINES.get(config.pool.engine)(config)


def build_placed(config: SpartaConfig) -> Tribe:
    """The HF tribe where ``backend.placement`` puts it (the ``hf`` engine)."""
    return PLACEMENTS.get(config.backend.placement)(config)


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


# --------------------------------------------------------------------------------------------- several chunks
#
# The round loop cuts answering and judging into chunks whose boundaries and seeds depend only on the
# configuration. A tribe that can work on several chunks at once (data-parallel workers) says how many with
# ``parallel_chunks`` and offers ``generate_chunks`` / ``judge_chunks``; the loop then checkpoints after every
# ``parallel_chunks`` chunks. Any other tribe runs the chunks one by one, exactly as a single call each.

GenerateChunk = tuple[Sequence[tuple[str, Instruction]], int]
"""The (member, instruction) requests of one chunk and the chunk's sampling seed."""


def parallel_chunks(tribe: Tribe) -> int:
    """How many chunks the tribe works on at once (1 for a tribe in one process)."""
    return int(getattr(tribe, "parallel_chunks", 1))


def generate_chunks(
    tribe: Tribe, chunks: Iterable[GenerateChunk], progress: Progress = _no_progress
) -> Iterator[list[Response]]:
    """Each chunk's responses, chunk after chunk in order, however many chunks run at the same time."""
    parallel = getattr(tribe, "generate_chunks", None)
    if parallel is not None:
        return parallel(chunks, progress)
    return (tribe.generate(requests, seed, progress) for requests, seed in chunks)


def judge_chunks(
    tribe: Tribe, chunks: Iterable[Sequence[JudgeRequest]], progress: Progress = _no_progress
) -> Iterator[list[Judgment]]:
    """Each chunk's judgments, chunk after chunk in order, however many chunks run at the same time."""
    parallel = getattr(tribe, "judge_chunks", None)
    if parallel is not None:
        return parallel(chunks, progress)
    return (tribe.judge(requests, progress) for requests in chunks)


def close_tribe(tribe: Tribe) -> None:
    """Release what the tribe holds outside this process (workers, a private cluster); a no-op for most."""
    close = getattr(tribe, "close", None)
    if close is not None:
        close()
