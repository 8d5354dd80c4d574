"""The vLLM tribe: answering and judging on vLLM server(s), training delegated to a learner.

Composition, each part chosen by a registry: the learner is the tribe of the configured placement
(``LEARNERS``; today ``local``, the HF tribe in this process), which trains every member with TRL + PEFT, writes
the round's adapters and holds the members' tokenizers and chat templates (``learner.pool``); the judge is the
``SERVER_JUDGES`` entry of ``judge.type``. The server is the user's (``vllm.urls``) or one started on first use,
so a resumed run whose remaining work is done never starts one.

Members are adapters: before any training the learner's initial adapters (saved once under
``RUN/vllm/initial-adapters``), then after round r the adapters the learner saved in ``round_RRR/adapters``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from sparta.backends.base import LEARNERS, Progress, _no_progress, close_tribe
from sparta.backends.hf.pool import ModelPool
from sparta.backends.vllm.adapters import AdapterSet
from sparta.backends.vllm.client import VllmClient
from sparta.backends.vllm.generation import generate
from sparta.backends.vllm.judges import SERVER_JUDGES
from sparta.backends.vllm.server import LocalServer, ServerSpec, default_python, usable_cpus
from sparta.config import SpartaConfig
from sparta.provisioning import resolve_model
from sparta.records import Instruction, JudgeRequest, Judgment, PreferencePair, Response
from sparta.rundir import ENGINE_DIR, INITIAL_ADAPTERS, SERVER_LOG, adapter_dir, round_index_of

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The ``--max-lora-rank`` values vLLM accepts; the served rank is the smallest that holds every adapter."""

SERVED_BASE = "sparta-base"


class Learner(Protocol):
    """What trains the members for the vLLM tribe: the ``train``/``load_round`` half of the Tribe contract, and a
    pool that knows every member's tokenizer, chat template and sampling."""

    members: list[str]
    pool: ModelPool

    def train(
        self, pairs: Sequence[PreferencePair], round_dir: Path, seed: int, progress: Progress = _no_progress
    ) -> dict[str, Any]: ...

    def load_round(self, round_dir: Path) -> None: ...


def _module_names(target_modules: Any) -> list[str]:
    """PEFT's target_modules: a list or set of names, or one name (or pattern) as a string."""
    return [target_modules] if isinstance(target_modules, str) else list(target_modules or [])


def _served_rank(rank: int) -> int:
    return next((allowed for allowed in LORA_RANKS if allowed >= rank), rank)


class VllmTribe:
    """Members as LoRA adapters on vLLM server(s); the learner trains them."""

    def __init__(self, config: SpartaConfig, learner: Learner) -> None:
        self.config = config
        self.learner = learner
        self.pool = learner.pool
        self.members: list[str] = list(learner.members)
        self.run_dir: Path | None = None
        self.server: LocalServer | None = None
        self.client: VllmClient | None = None
        self.adapters = AdapterSet(config.vllm.request_timeout, self._path_on_server)
        self._judge: Any = None

    # ------------------------------------------------------------------ the run directory and the server

    def bind_run(self, run_dir: Path) -> None:
        """Keep the server's log and the initial adapters in ``run_dir/vllm``."""
        self.run_dir = Path(run_dir)

    def _engine_dir(self) -> Path:
        if self.run_dir is None:
            raise RuntimeError("VllmTribe.bind_run(run_dir) must come before the first request")
        return self.run_dir / ENGINE_DIR

    def _path_on_server(self, directory: Path) -> str:
        mount = self.config.vllm.server_run_dir
        if mount is None or self.run_dir is None:
            return str(Path(directory).resolve())
        return str(Path(mount) / Path(directory).resolve().relative_to(self.run_dir.resolve()))

    def server_spec(self) -> ServerSpec:
        """How a server for this pool is started (base model, LoRA limits, precision, threads)."""
        vllm = self.config.vllm
        peft = {member: self._peft_config(member) for member in self.members}
        targets = set(vllm.lora_target_modules or self.config.training.lora.target_modules)
        if vllm.lora_target_modules is None:
            targets |= {name for config in peft.values() for name in _module_names(config.target_modules)}
        return ServerSpec(
            python=vllm.python or default_python(),
            model=str(resolve_model(self.config.pool.members[0].model)),
            served_name=SERVED_BASE,
            dtype=self.config.pool.dtype,
            max_loras=len(self.members),
            max_lora_rank=_served_rank(max(config.r for config in peft.values())),
            lora_target_modules=tuple(sorted(targets)),
            threads=vllm.threads or usable_cpus(),
            kv_cache_gb=vllm.kv_cache_gb,
            log_path=self._engine_dir() / SERVER_LOG,
            max_model_len=vllm.max_model_len,
            extra_args=tuple(vllm.extra_args),
            start_timeout=vllm.start_timeout,
            seed=self.config.run.seed,
        )

    def _peft_config(self, member: str) -> Any:
        model = next(model for _, model, members in self.pool.bases() if member in members)
        return model.peft_config[member]

    def _connect(self) -> VllmClient:
        if self.client is None:
            urls = list(self.config.vllm.urls)
            if not urls:
                self.server = LocalServer(self.server_spec())
                urls = [self.server.start()]
            self.client = VllmClient(urls, self.config.vllm.request_timeout, self.config.vllm.parallel_requests)
        return self.client

    def _ready(self, stage: str) -> VllmClient:
        """A client whose servers hold every member's current adapter."""
        if not self.adapters.wanted:
            self._want_initial()
        client = self._connect()
        self.adapters.sync(client.urls, stage)
        return client

    def _want_initial(self) -> None:
        """Round 0: the learner's initial adapters (configured ones, or fresh LoRA whose B is zero)."""
        root = self._engine_dir() / INITIAL_ADAPTERS
        for member in self.members:
            self.pool.save_adapter(member, root / member)
            self.adapters.want(member, 0, root / member)

    def _want_round(self, round_dir: Path) -> None:
        round_index = round_index_of(round_dir)
        for member in self.members:
            self.adapters.want(member, round_index, adapter_dir(round_dir, member))

    def close(self) -> None:
        """Stop the server sparta started (a user's servers are left running) and the learner's workers, if any."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.client = None
        self.adapters.loaded.clear()
        close_tribe(self.learner)

    # ------------------------------------------------------------------ the Tribe contract

    def generate(
        self, requests: Sequence[tuple[str, Instruction]], seed: int, progress: Progress = _no_progress
    ) -> list[Response]:
        client = self._ready("answering")
        return generate(self.pool, client, self.adapters, requests, seed, progress)

    def judge(self, requests: Sequence[JudgeRequest], progress: Progress = _no_progress) -> list[Judgment]:
        client = self._ready("judging")
        if self._judge is None or self._judge.client is not client:
            judge_class = SERVER_JUDGES.get(self.config.judge.type)
            self._judge = judge_class(self.pool, self.config.judge, client, self.adapters)
        return self._judge.score(requests, progress)

    def train(
        self, pairs: Sequence[PreferencePair], round_dir: Path, seed: int, progress: Progress = _no_progress
    ) -> dict[str, Any]:
        """The learner trains and saves every member; the servers load the new adapters before the next request."""
        metrics = self.learner.train(pairs, round_dir, seed, progress)
        self._want_round(round_dir)
        return metrics

    def load_round(self, round_dir: Path) -> None:
        """Members as trained in ``round_dir``: in the learner and, from the next request on, on the servers."""
        self.learner.load_round(round_dir)
        self._want_round(round_dir)


def build(config: SpartaConfig) -> VllmTribe:
    """The factory registered as engine ``vllm``: the placement's learner, answering and judging on vLLM."""
    placement = getattr(config.backend, "placement", "local")  # a placement field arrives with the Ray placement
    return VllmTribe(config, LEARNERS.get(placement)(config))
