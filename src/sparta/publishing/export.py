"""``sparta export RUN --member NAME [--round R] --out DIR [--merged]``: one member of a run as a standalone model.

``--merged``  the base with the member's LoRA merged in: safetensors weights, ``config.json``,
              ``generation_config.json``, the tokenizer and its chat template. ``AutoModelForCausalLM.from_pretrained``
              loads DIR, and so do vLLM and lm-evaluation-harness (``lm_eval --model hf --model_args pretrained=DIR``).
default       the PEFT adapter (``adapter_config.json`` naming a base PEFT can load, ``adapter_model.safetensors``)
              with the tokenizer and chat template: ``AutoPeftModelForCausalLM.from_pretrained(DIR)``, or
              ``PeftModel.from_pretrained(base, DIR)``.

Both carry a model card (``README.md``: the base, the adapter, the rounds, the run's evaluation of the member) and
``sparta_export.json``: where the member comes from (run, round, the adapter's sha256) and what a chat
template does not hold (the member's system prompt and sampling). The merged weights are computed by the pool's own
code (``ModelPool``, the run's dtype and device), so the export answers as the member answered in the run.

The round is by default the last one that saved the member's adapter (0 when none did); round 0 is the member as
configured: its initial adapter, or the base model itself. DIR is written as a temporary sibling and renamed into
place, so it is either complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparta.config import ConfigError, MemberConfig, SpartaConfig, load_config
from sparta.errors import SpartaError
from sparta.pipeline.state import RunState
from sparta.rundir import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CONFIG_YAML,
    STATE_JSON,
    adapter_dir,
    file_sha256,
    round_dir,
    write_json,
)

EXPORT_JSON = "sparta_export.json"
INITIAL = 0


class ExportError(SpartaError, ValueError):
    """A member, round or file that cannot be exported; the message names it and what exists instead."""


@dataclass(frozen=True)
class MemberAt:
    """A member at a round: its configuration and the adapter that holds it then (None: it is the base model)."""

    member: MemberConfig
    round: int
    adapter: Path | None


@dataclass(frozen=True)
class Exported:
    out: Path
    member: str
    round: int
    merged: bool


# --------------------------------------------------------------------------------------------- which adapter


def _load_run(run_dir: Path) -> tuple[SpartaConfig, RunState]:
    if not (run_dir / CONFIG_YAML).is_file() or not (run_dir / STATE_JSON).is_file():
        raise ExportError(f"{run_dir} is not a run directory: it needs {CONFIG_YAML} and {STATE_JSON}")
    try:
        config = load_config(run_dir / CONFIG_YAML)
    except ConfigError as err:
        raise ExportError(str(err)) from None
    if config.backend.kind != "hf":
        raise ExportError(f"{run_dir}: backend.kind is {config.backend.kind!r}; only hf runs have models to export")
    return config, RunState.load(run_dir / STATE_JSON)


def _checked_adapter(directory: Path, what: str) -> Path:
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (directory / name).is_file():
            raise ExportError(f"{what}: {directory / name} is missing")
    return directory


def trained_rounds(run_dir: Path, state: RunState, member: str) -> list[int]:
    """The completed rounds that saved ``member``'s adapter."""
    return [
        round_index
        for round_index in state.completed_rounds()
        if (adapter_dir(round_dir(run_dir, round_index), member) / ADAPTER_CONFIG).exists()
    ]


def _initial(member: MemberConfig) -> MemberAt:
    if member.adapter is None:
        return MemberAt(member, INITIAL, None)
    directory = Path(member.adapter).expanduser()
    if not directory.is_dir():
        raise ExportError(f"member {member.name!r}: its initial adapter {member.adapter!r} is not a local directory")
    return MemberAt(member, INITIAL, _checked_adapter(directory, f"member {member.name!r} at round 0"))


def locate(run_dir: Path, name: str, round_index: int | None = None) -> MemberAt:
    """The member ``name`` of the run at ``round_index`` (default: its last trained round)."""
    return _locate(Path(run_dir), *_load_run(Path(run_dir)), name, round_index)


def _locate(run_dir: Path, config: SpartaConfig, state: RunState, name: str, round_index: int | None) -> MemberAt:
    members = {m.name: m for m in config.pool.members}
    if name not in members:
        raise ExportError(f"{run_dir}: unknown member {name!r}; the run has {', '.join(members)}")
    member = members[name]
    trained = trained_rounds(run_dir, state, name)
    if round_index is None:
        round_index = trained[-1] if trained else INITIAL
    if round_index == INITIAL:
        return _initial(member)
    if round_index not in state.completed_rounds():
        done = ", ".join(map(str, state.completed_rounds())) or "none"
        raise ExportError(f"{run_dir}: round {round_index} is not completed (completed rounds: {done}; 0 is the start)")
    if round_index not in trained:
        saved = ", ".join(map(str, trained)) or "none"
        raise ExportError(
            f"{run_dir}: round {round_index} saved no adapter for {name!r} (it trained nothing that round); "
            f"rounds that did: {saved}; round 0 is the member as configured"
        )
    directory = adapter_dir(round_dir(run_dir, round_index), name)
    return MemberAt(member, round_index, _checked_adapter(directory, f"member {name!r} at round {round_index}"))


# --------------------------------------------------------------------------------------------- writing


def _write_merged(at: MemberAt, config: SpartaConfig, directory: Path) -> None:
    """The member as the pool computes it, its LoRA merged into the base weights."""
    from sparta.backends.hf.pool import ModelPool

    member = at.member.model_copy(update={"adapter": str(at.adapter) if at.adapter else None})
    pool = ModelPool(config.pool.model_copy(update={"members": [member]}), config.training.lora, config.run.seed)
    model = pool.model(member.name).merge_and_unload()
    model.save_pretrained(directory)


def _write_adapter(at: MemberAt, directory: Path) -> None:
    """The adapter's files, its config naming a base PEFT can load (an old run may name a sparta alias)."""
    from sparta.provisioning import loadable_reference

    if at.adapter is None:
        raise ExportError(
            f"member {at.member.name!r} has no adapter at round {at.round}: it is the base model "
            f"{at.member.model!r} itself; export it with --merged"
        )
    config = json.loads((at.adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    config.update(base_model_name_or_path=loadable_reference(at.member.model), inference_mode=True)
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.copyfile(at.adapter / ADAPTER_WEIGHTS, directory / ADAPTER_WEIGHTS)


def _write_tokenizer(at: MemberAt, config: SpartaConfig, directory: Path) -> None:
    """The base's own tokenizer and chat template, as loaded from the base (not the pool's left-padded copy)."""
    from transformers import AutoTokenizer

    from sparta.provisioning import resolve_model

    path = resolve_model(at.member.model)
    AutoTokenizer.from_pretrained(path, trust_remote_code=config.pool.trust_remote_code).save_pretrained(directory)


def _provenance(run_dir: Path, at: MemberAt, merged: bool) -> dict[str, Any]:
    from sparta.provisioning import loadable_reference

    return {
        "run": str(run_dir.resolve()),
        "member": at.member.name,
        "round": at.round,
        "merged": merged,
        "base": loadable_reference(at.member.model),
        "adapter_sha256": file_sha256(at.adapter / ADAPTER_WEIGHTS) if at.adapter else None,
        "system_prompt": at.member.system_prompt,
        "sampling": at.member.sampling.model_dump(mode="json") if at.member.sampling else None,
    }


def _write_card(run_dir: Path, config: SpartaConfig, at: MemberAt, merged: bool, directory: Path) -> None:
    from sparta.provisioning import loadable_reference
    from sparta.publishing.model_card import MODEL_CARD, model_card

    card = model_card(run_dir, config, at.member, at.round, merged, loadable_reference(at.member.model))
    (directory / MODEL_CARD).write_text(card, encoding="utf-8")


def _empty_target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty directory; choose a new one")


def export_member(
    run_dir: Path, name: str, out: Path, round_index: int | None = None, merged: bool = False
) -> Exported:
    """Write member ``name`` of ``run_dir`` at ``round_index`` into ``out`` (see the module docstring)."""
    run_dir, out = Path(run_dir), Path(out)
    _empty_target(out)
    config, state = _load_run(run_dir)
    at = _locate(run_dir, config, state, name, round_index)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    work.chmod(0o755)  # mkdtemp makes it private; an exported model is meant to be shared
    try:
        if merged:
            _write_merged(at, config, work)
        else:
            _write_adapter(at, work)
        _write_tokenizer(at, config, work)
        write_json(work / EXPORT_JSON, _provenance(run_dir, at, merged))
        _write_card(run_dir, config, at, merged, work)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Exported(out=out, member=name, round=at.round, merged=merged)
