"""Each member's current LoRA adapter, loaded on every server under a name used once.

A member's adapter is served as ``MEMBER@rRRR-DIGEST`` (the round whose training produced it, 000 before any,
and the first 8 hex digits of its weights' sha256). vLLM caches adapters by name, so a name is never reused for
other weights: not across rounds, and not when a killed run retrains a round into the same directory. Loading
goes through ``/v1/load_lora_adapter`` (the server needs ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=1``); once every
member's new adapter is loaded, the names it replaces are unloaded.

Adapters that train the output head or the embeddings are refused before any request: vLLM's CPU LoRA kernels
crash the engine on prompt log-probabilities with them, and the GPU kernels serve them only with extra flags.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparta.backends.vllm.client import post
from sparta.backends.vllm.errors import AdapterRefusedError
from sparta.config import OUTPUT_OR_EMBEDDING_MODULES
from sparta.rundir import ADAPTER_CONFIG, ADAPTER_WEIGHTS, file_sha256

_ALREADY_LOADED = "has already been loaded"


def _module_names(config: dict) -> set[str]:
    """Every module an adapter config names as adapted or fully saved."""
    names: set[str] = set()
    for key in ("target_modules", "modules_to_save"):
        value = config.get(key) or []
        names.update([value] if isinstance(value, str) else value)
    return names


def _weight_names(weights: Path) -> list[str]:
    """Tensor names of a safetensors file, read from its JSON header (no tensors loaded)."""
    with weights.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return [name for name in header if name != "__metadata__"]


def check_servable(directory: Path, member: str) -> None:
    """Raise :class:`AdapterRefusedError` unless ``directory`` holds a PEFT LoRA adapter vLLM can serve."""
    config_path, weights = directory / ADAPTER_CONFIG, directory / ADAPTER_WEIGHTS
    if not config_path.is_file() or not weights.is_file():
        raise AdapterRefusedError(
            f"member {member!r}: {directory} is not a PEFT adapter ({ADAPTER_CONFIG} and {ADAPTER_WEIGHTS} needed)"
        )
    config = json.loads(config_path.read_text())
    named = {name.rsplit(".", 1)[-1] for name in _module_names(config)}
    in_weights = {
        part for name in _weight_names(weights) for part in name.split(".") if part in OUTPUT_OR_EMBEDDING_MODULES
    }
    refused = sorted((named & OUTPUT_OR_EMBEDDING_MODULES) | in_weights)
    if refused:
        raise AdapterRefusedError(
            f"member {member!r}: the adapter in {directory} trains {refused} (the output head or embeddings), which "
            "the vLLM engine cannot serve; use pool.engine=hf for it, or train adapters on inner layers only "
            "(training.lora.target_modules)"
        )


def served_name(member: str, round_index: int, directory: Path) -> str:
    """``MEMBER@rRRR-DIGEST``: unique to this member, round and set of weights."""
    return f"{member}@r{round_index:03d}-{file_sha256(directory / ADAPTER_WEIGHTS)[:8]}"


@dataclass(frozen=True)
class ServedAdapter:
    name: str
    directory: Path


class AdapterSet:
    """Which adapter each member answers and judges with, and which names are loaded on which server.

    ``path_on_server`` turns a local adapter directory into the path the server reads it from
    (``vllm.server_run_dir``).
    """

    def __init__(self, timeout: float, path_on_server: Callable[[Path], str] = str) -> None:
        self.timeout = timeout
        self.path_on_server = path_on_server
        self.wanted: dict[str, ServedAdapter] = {}
        self.loaded: dict[str, set[str]] = {}

    def want(self, member: str, round_index: int, directory: Path) -> None:
        """From now on ``member`` is the adapter in ``directory`` (checked here, loaded by :meth:`sync`)."""
        check_servable(directory, member)
        self.wanted[member] = ServedAdapter(served_name(member, round_index, directory), Path(directory))

    def name(self, member: str) -> str:
        """The served name requests for ``member`` use; :meth:`sync` must have run since the last :meth:`want`."""
        return self.wanted[member].name

    def sync(self, urls: list[str], stage: str) -> None:
        """Load every wanted adapter on every server, then unload the names they replaced."""
        keep = {adapter.name for adapter in self.wanted.values()}
        for url in urls:
            loaded = self.loaded.setdefault(url, set())
            for member, adapter in self.wanted.items():
                if adapter.name not in loaded:
                    self._load(url, member, adapter, stage)
            for name in sorted(loaded - keep):
                self._unload(url, name, stage)

    def _load(self, url: str, member: str, adapter: ServedAdapter, stage: str) -> None:
        path = self.path_on_server(adapter.directory)
        body = {"lora_name": adapter.name, "lora_path": path}
        status, answer = post(url, "/v1/load_lora_adapter", body, self.timeout, f"member {member!r}, {stage}")
        if status != 200 and not (status == 400 and _ALREADY_LOADED in str(answer)):
            raise AdapterRefusedError(
                f"member {member!r}, {stage}: the vLLM server at {url} refused to load adapter {adapter.name} from "
                f"{path} ({status}: {answer}). The server must see the run directory at that path "
                "(vllm.server_run_dir) and run with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1"
            )
        self.loaded[url].add(adapter.name)

    def _unload(self, url: str, name: str, stage: str) -> None:
        status, answer = post(url, "/v1/unload_lora_adapter", {"lora_name": name}, self.timeout, stage)
        if status not in (200, 404):  # 404: already gone, which is what we want
            raise AdapterRefusedError(f"{stage}: the vLLM server at {url} did not unload {name} ({status}: {answer})")
        self.loaded[url].discard(name)
