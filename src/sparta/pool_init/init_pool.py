"""``sparta init-pool``: make a diverse pool by fine-tuning one base model separately on each member's subset.

The SPARTA paper starts from ten experts, each an instruct model SFT'd on its own slice of Tulu-v2: combat only
teaches something when the members differ. Here every member is a LoRA adapter on ONE loaded copy of the base
(``ModelPool``), trained member by member (the others untouched), then the pool's diversity is measured.

    OUT/
      init-pool.yaml          the resolved init-pool configuration
      adapters/MEMBER/        PEFT adapter (adapter_config.json + adapter_model.safetensors) + sft.json
                              + sft_examples.jsonl (the examples it was fine-tuned on)
      diversity.json          measures of sparta.pool_init.diversity, with every greedy response
      pool.yaml               a run configuration: ``sparta run OUT/pool.yaml --out RUN``

Resumable per member: an adapter is trained in a temporary sibling directory and renamed into place with its
``sft.json`` (settings fingerprint + metrics) and ``sft_examples.jsonl`` already inside, so a member whose
directory exists is finished and is loaded, not retrained. A finished member whose settings have changed is an
error, never silently reused. ``sft_examples.jsonl`` travels with the adapter so that ``sparta eval`` leaves the
member's training prompts out of its held-out items wherever the adapter is used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparta.config import ConfigError, MemberConfig, SpartaConfig, config_from_dict, dump_config, load_config
from sparta.errors import SpartaError
from sparta.pipeline.progress import Reporter, SilentReporter
from sparta.pool_init.config import BASE_MEMBER, InitPoolConfig, load_init_config
from sparta.pool_init.diversity import measure_diversity
from sparta.pool_init.subsets import Example, member_examples
from sparta.records import Instruction
from sparta.rundir import ADAPTERS, SFT_EXAMPLES, atomic_write_text, read_json, write_json, write_jsonl
from sparta.seeding import derive_seed

POOL_YAML = "pool.yaml"
INIT_YAML = "init-pool.yaml"
DIVERSITY_JSON = "diversity.json"
SFT_JSON = "sft.json"


class InitPoolError(SpartaError, RuntimeError):
    """OUT cannot be used as asked (a finished member trained with other settings)."""


@dataclass
class InitPoolResult:
    """What ``init_pool`` made: where, which members it trained now and which it found finished."""

    out: Path
    pool_yaml: Path
    adapters: dict[str, Path]
    trained: list[str]
    resumed: list[str]
    sft: dict[str, dict[str, Any]]
    diversity: dict[str, Any] | None
    seconds: float
    config: SpartaConfig | None = field(default=None, repr=False)


# --------------------------------------------------------------------------------------------- the run config


def _base_reference(base: str) -> str:
    """A local base directory is written as an absolute path, so pool.yaml works from any directory."""
    path = Path(base).expanduser()
    return str(path.resolve()) if path.is_dir() else base


def run_config(config: InitPoolConfig, out: Path, source: str = "init-pool configuration") -> SpartaConfig:
    """The run configuration: ``config.sparta`` plus one member per init member, base + its adapter.

    Adapter paths are absolute: ``ModelPool`` reads them relative to the working directory, not to the YAML file.
    """
    adapters = Path(out).resolve() / ADAPTERS
    members = [
        MemberConfig(
            name=m.name,
            model=_base_reference(config.base),
            adapter=str(adapters / m.name),
            system_prompt=m.system_prompt,
            sampling=m.sampling,
        ).model_dump(mode="json", exclude_none=True)
        for m in config.members
    ]
    data = dict(config.sparta)
    data["pool"] = {**(data.get("pool") or {}), "members": members}
    return config_from_dict(data, f"{source}: sparta")


# --------------------------------------------------------------------------------------------- resuming


def _fingerprint(config: InitPoolConfig, name: str) -> dict[str, Any]:
    """Everything a member's adapter depends on."""
    member = next(m for m in config.members if m.name == name)
    return {
        "base": config.base,
        "seed": config.seed,
        "member": member.model_dump(mode="json", exclude={"sampling"}),
        "sft": config.sft.model_dump(mode="json"),
    }


def finished(out: Path, config: InitPoolConfig, name: str) -> bool:
    """Whether the member's adapter is complete; a complete one made with other settings is an error."""
    directory = Path(out) / ADAPTERS / name
    if not (directory / SFT_JSON).is_file():
        return False
    saved = read_json(directory / SFT_JSON).get("fingerprint")
    if saved != _fingerprint(config, name):
        raise InitPoolError(
            f"{directory} was trained with other settings (base, seed, member or sft); delete that directory to "
            "retrain the member, or choose another output directory"
        )
    return True


def record_examples(directory: Path, examples: list[Example]) -> None:
    """The member's SFT set beside its adapter (every example given to SFT, those skipped for length included)."""
    write_jsonl(directory / SFT_EXAMPLES, [{"prompt": ex.prompt, "response": ex.response} for ex in examples])


def _clear_stale(adapters: Path) -> None:
    """Temporary training directories left by a killed process."""
    for stale in adapters.glob(".*.training-*"):
        shutil.rmtree(stale, ignore_errors=True)


# --------------------------------------------------------------------------------------------- training


def _training_pool(config: InitPoolConfig, run: SpartaConfig, done: set[str]):
    """The pool to train: finished members with their saved adapter, the others with a fresh one, and the
    untrained base as a reference row when diversity asks for it. One loaded copy of the base for all."""
    from sparta.backends.hf.pool import ModelPool

    members = [m if m.name in done else m.model_copy(update={"adapter": None}) for m in run.pool.members]
    if config.diversity.enabled and config.diversity.include_base:
        members.append(MemberConfig(name=BASE_MEMBER, model=_base_reference(config.base)))
    return ModelPool(run.pool.model_copy(update={"members": members}), config.sft.lora, config.seed)


def _steps(examples: int, config: InitPoolConfig) -> int:
    batches = math.ceil(examples / config.sft.batch_size)
    return max(1, math.ceil(batches / config.sft.gradient_accumulation_steps * config.sft.epochs))


def _train_member(
    pool, config: InitPoolConfig, name: str, examples: list[Example], out: Path, reporter: Reporter
) -> dict[str, Any]:
    """Train one member into a temporary directory, then rename it into place (atomic per member)."""
    from sparta.pool_init.sft import train_sft

    adapters = Path(out) / ADAPTERS
    work = Path(tempfile.mkdtemp(prefix=f".{name}.training-", dir=adapters))
    work.chmod(0o755)  # mkdtemp makes it private; an adapter directory is shared like any other
    try:
        seed = derive_seed(config.seed, "sft", name) % 2**31  # numpy, under set_seed, wants 32 bits
        with reporter.stage(f"SFT {name} ({len(examples)} examples)", _steps(len(examples), config)) as advance:
            metrics = train_sft(pool, name, examples, config.sft, seed, advance)
        pool.save_adapter(name, work)
        record_examples(work, examples)
        write_json(work / SFT_JSON, {"fingerprint": _fingerprint(config, name), "metrics": metrics})
        target = adapters / name
        if target.exists():  # an incomplete directory (no sft.json) from a hand-made copy
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return metrics


# --------------------------------------------------------------------------------------------- diversity


def diversity_instructions(config: InitPoolConfig, excluded: set[str]) -> list[Instruction]:
    """Held-out verifiable prompts: the configured task (default: procedural over the members' domains, with a
    seed derived from the init-pool seed), minus every prompt in ``excluded`` (the SFT prompts and the run's
    instruction set), so the same prompts can later measure the pool after SPARTA rounds."""
    from sparta.tasks import load_task, procedural_domains
    from sparta.tasks.procedural_domains import DOMAINS

    settings = config.diversity
    options = dict(settings.options)
    if settings.task == "procedural":
        verifiable_domains = [d for d in procedural_domains() if DOMAINS.get(d).answer_type is not None]
        options.setdefault("domains", config.procedural_domains() or verifiable_domains)
        options.setdefault("size", settings.per_domain * len(options["domains"]))
        options.setdefault("seed", derive_seed(config.seed, "diversity") % 2**31)
    items = [x for x in load_task(settings.task, options) if x.text not in excluded]
    return [x for x in items if x.answer is not None and x.answer_type is not None]


def run_instructions(run: SpartaConfig) -> list[Instruction]:
    """The run's whole instruction set (combat and its held-out share)."""
    from sparta.tasks import load_task

    return load_task(run.data.task, run.data.options)


def _diversity_key(config: InitPoolConfig, items: list[Instruction]) -> dict[str, Any]:
    """What the measures depend on: every member's adapter, the settings and the exact prompts."""
    prompts = json.dumps([[x.id, x.text, x.answer, x.answer_type] for x in items])
    return {
        "members": [_fingerprint(config, m.name) for m in config.members],
        "diversity": config.diversity.model_dump(mode="json"),
        "prompts": hashlib.sha256(prompts.encode()).hexdigest(),
    }


def _measure(pool, config: InitPoolConfig, out: Path, items: list[Instruction], reporter: Reporter) -> dict[str, Any]:
    path = Path(out) / DIVERSITY_JSON
    key = _diversity_key(config, items)
    if path.is_file() and read_json(path).get("key") == key:
        reporter.log(f"diversity: reusing {path}")
        return read_json(path)
    settings = config.diversity
    members = ([BASE_MEMBER] if settings.include_base else []) + [m.name for m in config.members]
    with reporter.stage(
        f"diversity: {len(members)} members x {len(items)} held-out prompts", len(members) * len(items)
    ) as advance:
        result = measure_diversity(pool, items, settings.max_new_tokens, settings.batch_size, members, advance)
    result["key"] = key
    write_json(path, result)
    return result


# --------------------------------------------------------------------------------------------- entry point


def init_pool(
    config_path: Path, out: Path, overrides: list[str] | None = None, reporter: Reporter | None = None
) -> InitPoolResult:
    """Train every member's adapter (skipping finished ones), measure diversity, write ``OUT/pool.yaml``."""
    start = time.perf_counter()
    reporter = reporter or SilentReporter()
    config = load_init_config(config_path, overrides)
    out = Path(out)
    run = run_config(config, out, str(config_path))  # a bad `sparta:` section fails before any training
    adapters = out / ADAPTERS
    adapters.mkdir(parents=True, exist_ok=True)
    _clear_stale(adapters)
    atomic_write_text(out / INIT_YAML, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))

    examples = {m.name: member_examples(m, config.seed) for m in config.members}
    held_out = _held_out_prompts(config, run, examples)  # every task file is read before any model loads
    done = {m.name for m in config.members if finished(out, config, m.name)}
    for name in sorted(done):
        reporter.log(f"{name}: adapter already trained, loading {adapters / name}")
        if not (adapters / name / SFT_EXAMPLES).is_file():  # trained before adapters carried their examples
            record_examples(adapters / name, examples[name])
    pool = _training_pool(config, run, done)

    sft: dict[str, dict[str, Any]] = {}
    trained = []
    for member in config.members:
        name = member.name
        if name in done:
            sft[name] = read_json(adapters / name / SFT_JSON)["metrics"]
            continue
        sft[name] = _train_member(pool, config, name, examples[name], out, reporter)
        trained.append(name)
        reporter.log(_summary(name, sft[name]))

    atomic_write_text(out / POOL_YAML, dump_config(run))
    load_config(out / POOL_YAML)  # the file must load as it will in `sparta run`

    diversity = _measure(pool, config, out, held_out, reporter) if config.diversity.enabled else None
    return InitPoolResult(
        out=out,
        pool_yaml=out / POOL_YAML,
        adapters={m.name: adapters / m.name for m in config.members},
        trained=trained,
        resumed=[m.name for m in config.members if m.name in done],
        sft=sft,
        diversity=diversity,
        seconds=time.perf_counter() - start,
        config=run,
    )


def _held_out_prompts(
    config: InitPoolConfig, run: SpartaConfig, examples: dict[str, list[Example]]
) -> list[Instruction]:
    """The diversity prompts: none an SFT prompt or an instruction of the run (empty when diversity is off)."""
    run_texts = {x.text for x in run_instructions(run)}
    if not config.diversity.enabled:
        return []
    excluded = {ex.prompt for xs in examples.values() for ex in xs} | run_texts
    items = diversity_instructions(config, excluded)
    if not items:
        raise ConfigError(
            f"diversity.task {config.diversity.task!r} leaves no held-out prompt with a gold answer (answer and "
            "answer_type) once the SFT prompts and the run's instructions are left out; choose a task with gold "
            "answers or set diversity.enabled=false"
        )
    return items


def _summary(name: str, metrics: dict[str, Any]) -> str:
    losses = f"loss {metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f}" if metrics["steps"] else "no step"
    return f"{name}: {metrics['examples']} examples, {metrics['steps']} steps, {losses} ({metrics['seconds']:.0f} s)"
