"""The pool of members: one loaded copy per base model, one named LoRA adapter per member.

A pool of ten members fine-tuned from the same base costs one base model in memory plus ten small adapters.
A member without an initial adapter gets a fresh LoRA whose B matrix starts at zero, so it answers exactly as
the base does until it is trained. Adapters are read and written as PEFT safetensors only (no pickle).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from sparta.backends import chat
from sparta.config import ConfigError, LoraConfig, MemberConfig, PoolConfig, SamplingConfig
from sparta.errors import SpartaError
from sparta.provisioning import ModelNotFoundError, loadable_reference, resolve_model
from sparta.provisioning.aliases import looks_like_a_path, not_found_message
from sparta.rundir import ADAPTER_CONFIG, ADAPTER_WEIGHTS, atomic_write_bytes, atomic_write_text
from sparta.seeding import derive_seed

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class _Base:
    """One loaded base model shared by the members listed in ``members``."""

    name: str
    tokenizer: PreTrainedTokenizerBase
    model: PeftModel | None = None
    members: list[str] = field(default_factory=list)


class AdapterError(SpartaError, ValueError):
    """A configured adapter that does not fit its member's base model."""


def _unloadable(path: Path, what: str, err: Exception) -> str:
    """Why ``path`` gave no ``what``: a directory without the files, or a name that is neither path nor hub id."""
    if path.is_dir():
        return f"{path}: could not load its {what}: {err}"
    return f"{not_found_message(str(path))}, and the hub could not provide it: {err}"


def _load_tokenizer(path: Path, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:  # no such repository, offline, or no usable tokenizer files
        raise ModelNotFoundError(_unloadable(path, "tokenizer", err)) from None
    tokenizer.padding_side = "left"  # generation continues from the right edge of every row
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _from_pretrained(path: Path, pool: PoolConfig, dtype: torch.dtype | str) -> torch.nn.Module:
    hf_logging.disable_progress_bar()  # the pipeline draws its own progress; a bar per load is noise
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=pool.trust_remote_code, use_safetensors=True
        )
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(_unloadable(path, "model (safetensors weights only)", err)) from None
    finally:
        hf_logging.enable_progress_bar()
    return model.to(pool.device).eval()


def _load_base(path: Path, pool: PoolConfig, tokenizer: PreTrainedTokenizerBase) -> tuple[torch.nn.Module, Any]:
    """The base model in the configured dtype; with ``auto``, the measured one and the measurement (else None)."""
    if pool.dtype == "auto":
        from sparta.backends.hf.precision import choose_dtype

        choice, model = choose_dtype(lambda: _from_pretrained(path, pool, torch.float32), tokenizer, path)
        return model.eval(), choice
    if pool.device == "cpu" and pool.dtype != "float32":
        warnings.warn(f"pool.dtype={pool.dtype} on CPU is far slower than float32", stacklevel=3)
    return _from_pretrained(path, pool, _DTYPES[pool.dtype]), None


def _say_choice(name: str, choice: Any) -> None:
    from rich.console import Console
    from rich.markup import escape

    how = "cached measurement" if choice.cached else "measured now"
    message = f"pool.dtype auto for {name} on {choice.key['machine']}: {choice.dtype} ({choice.reason}; {how})"
    Console(stderr=True).print(f"[bold]sparta[/bold]: {escape(message)}")


def _peft_lora(lora: LoraConfig) -> PeftLoraConfig:
    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
        inference_mode=False,
    )


def _adapter_dir(source: str) -> Path:
    """A local adapter directory, or a hub adapter fetched (safetensors files only)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if looks_like_a_path(source):
        raise ModelNotFoundError(f"adapter directory {source} does not exist")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, allow_patterns=[ADAPTER_CONFIG, ADAPTER_WEIGHTS]))
    except Exception as err:  # the hub client raises many kinds (offline, not found, gated)
        raise ModelNotFoundError(
            f"adapter {source!r} is not a local directory and could not be fetched from the hub: {err}"
        ) from None


def _read_adapter(directory: Path) -> tuple[PeftLoraConfig, dict[str, torch.Tensor]]:
    weights = directory / ADAPTER_WEIGHTS
    if not (directory / ADAPTER_CONFIG).is_file():
        raise ModelNotFoundError(f"{directory}: no {ADAPTER_CONFIG}; expected a PEFT LoRA adapter")
    if not weights.is_file():
        raise ModelNotFoundError(f"{directory}: no {ADAPTER_WEIGHTS} (only safetensors adapters are loaded)")
    config = PeftLoraConfig.from_pretrained(str(directory))
    config.inference_mode = False
    config.base_model_name_or_path = None  # the pool decides the base; PEFT fills this in
    return config, load_file(str(weights))


def _jsonable(value: object) -> object:
    """PEFT configs hold sets (target modules) and enums; JSON wants lists and strings."""
    return sorted(value) if isinstance(value, (set, frozenset)) else str(value)


def _same_shape(a: PeftLoraConfig, b: PeftLoraConfig) -> bool:
    return a.r == b.r and a.lora_alpha == b.lora_alpha and set(a.target_modules) == set(b.target_modules)


class ModelPool:
    """The members of a pool, as named LoRA adapters over shared base models."""

    def __init__(self, pool: PoolConfig, lora: LoraConfig, seed: int) -> None:
        if not pool.members:
            raise ConfigError("pool.members is empty: a pool needs at least one member")
        for member in pool.members:
            if "." in member.name:
                raise ConfigError(
                    f"pool.members: member name {member.name!r} contains '.', which cannot name a PEFT adapter; "
                    f"rename it (e.g. {member.name.replace('.', '_')!r})"
                )
        self.config = pool
        self.seed = seed
        self.members: list[str] = [m.name for m in pool.members]
        self._member_config: dict[str, MemberConfig] = {m.name: m for m in pool.members}
        self._bases: dict[str, _Base] = {}
        self._base_of: dict[str, _Base] = {}
        self.dtype_choices: dict[str, Any] = {}
        """base model name -> the measured ``precision.DtypeChoice`` when pool.dtype is auto."""
        for member in pool.members:
            self._add_member(member, lora)

    # ------------------------------------------------------------------ construction

    def _base_for(self, model_name: str) -> tuple[_Base, Path]:
        path = resolve_model(model_name)
        key = str(path)
        if key not in self._bases:
            self._bases[key] = _Base(model_name, _load_tokenizer(path, self.config.trust_remote_code))
        return self._bases[key], path

    def _add_member(self, member: MemberConfig, lora: LoraConfig) -> None:
        base, path = self._base_for(member.model)
        if member.adapter is not None:
            lora_config, weights = _read_adapter(_adapter_dir(member.adapter))
        else:
            lora_config, weights = _peft_lora(lora), None
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # PEFT warns about names like "a" that are substrings of "lora_"; that only concerns its own
            # from_pretrained path, and the pool reads and writes adapters by explicit adapter name.
            warnings.filterwarnings("ignore", message="Adapter name .* should not be contained in the prefix")
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            torch.manual_seed(derive_seed(self.seed, "lora-init", member.clone_of or member.name))
            if base.model is None:
                model, choice = _load_base(path, self.config, base.tokenizer)
                if choice is not None:
                    self.dtype_choices[base.name] = choice
                    _say_choice(base.name, choice)
                base.model = get_peft_model(model, lora_config, adapter_name=member.name)
            else:
                base.model.add_adapter(member.name, lora_config)
        base.members.append(member.name)
        self._base_of[member.name] = base
        if weights is not None:
            self._set_weights(member.name, weights, member.adapter or "")
        base.model.eval()

    def _set_weights(self, member: str, weights: dict[str, torch.Tensor], source: str) -> None:
        model = self._base_of[member].model
        result = set_peft_model_state_dict(model, weights, adapter_name=member)
        unexpected = [k for k in result.unexpected_keys if "lora_" in k]
        missing = [k for k in result.missing_keys if f".{member}." in k and "lora_" in k]
        if unexpected or missing:
            raise AdapterError(
                f"adapter {source} does not fit member {member!r}: "
                f"{len(missing)} missing and {len(unexpected)} unexpected LoRA tensors "
                f"(e.g. {(missing or unexpected)[0]})"
            )

    # ------------------------------------------------------------------ access

    def _checked(self, member: str) -> _Base:
        try:
            return self._base_of[member]
        except KeyError:
            raise KeyError(f"unknown member {member!r}; the pool has {', '.join(self.members)}") from None

    def model(self, member: str) -> PeftModel:
        """The shared PeftModel with ``member``'s adapter active; it stays active until another member is asked for."""
        model = self._checked(member).model
        model.set_adapter(member)  # always: cheap, and it also re-arms layers after an adapter was replaced
        return model

    def tokenizer(self, member: str) -> PreTrainedTokenizerBase:
        """The base's tokenizer, left-padded, with a pad token."""
        return self._checked(member).tokenizer

    def member_config(self, member: str) -> MemberConfig:
        self._checked(member)
        return self._member_config[member]

    def sampling(self, member: str) -> SamplingConfig:
        """The member's own sampling settings, or the pool default."""
        return self.member_config(member).sampling or self.config.sampling

    def messages(self, member: str, instruction: str) -> list[dict[str, str]]:
        return chat.messages(self.member_config(member).system_prompt, instruction)

    def prompt_text(self, member: str, instruction: str) -> str:
        """The instruction in the member's chat template, ready for the assistant's turn."""
        owner = f"model {self.member_config(member).model!r} of member {member!r}"
        return chat.prompt_text(self.tokenizer(member), self.messages(member, instruction), owner)

    def bases(self) -> list[tuple[str, PeftModel, list[str]]]:
        """Every loaded base: its configured name, the shared PeftModel and the members on it."""
        return [(b.name, b.model, list(b.members)) for b in self._bases.values()]

    # ------------------------------------------------------------------ adapters on disk

    def save_adapter(self, member: str, directory: Path) -> None:
        """Write the member's adapter in PEFT format (adapter_config.json + adapter_model.safetensors); the config
        names a base that PEFT can load without sparta (``loadable_reference``)."""
        base = self._checked(member)
        directory.mkdir(parents=True, exist_ok=True)
        weights = get_peft_model_state_dict(base.model, adapter_name=member)
        weights = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
        atomic_write_bytes(directory / ADAPTER_WEIGHTS, save(weights, metadata={"format": "pt"}))
        config: dict[str, Any] = base.model.peft_config[member].to_dict()
        config["base_model_name_or_path"] = loadable_reference(base.name)
        config["inference_mode"] = True
        atomic_write_text(
            directory / ADAPTER_CONFIG, json.dumps(config, indent=2, sort_keys=True, default=_jsonable) + "\n"
        )

    def load_adapter(self, member: str, directory: Path) -> None:
        """Replace the member's adapter with the one saved in ``directory`` (its shape may differ)."""
        base = self._checked(member)
        config, weights = _read_adapter(Path(directory))
        if not _same_shape(base.model.peft_config[member], config):
            active = base.model.active_adapter
            base.model.delete_adapter(member)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Adapter name .* should not be contained in the prefix")
                base.model.add_adapter(member, config)
            base.model.set_adapter(active)
        self._set_weights(member, weights, str(directory))
        base.model.eval()
