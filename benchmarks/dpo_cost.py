"""The DPO section of round_cost.py (``--dpo``): where a member's training time goes, today's path beside the old one.

A pool of the demo's four members (their system prompts, LoRA r 8, the demo's DPO settings: beta 0.1, lr 5e-5,
batch 4, one epoch) trains every member on the same ``--dpo-pairs`` preference pairs, twice: once with TRL's own
reference pass (``dpo_baseline.py``: the path before ours) and once with today's ``train_member``, member by member
in turns, each path on its own copy of the pool. Per member and path:

- *total*: the whole ``train_member`` call (tokenizing, reference pass, trainer set-up, steps, saving the adapter);
- *steps*: the optimizer steps, from the Trainer's ``on_step_begin`` to ``on_step_end`` (forward, backward, update);
- *reference*: the reference log-probabilities (TRL's: inside its constructor; ours: before it);
- *other*: total - steps - reference (tokenizing, TRL's model hash and cache file, trainer set-up, saving);
- *outside steps*: (total - steps) / total. **Target: <= 20% on today's path.**

The pairs are the procedural task's instructions with answers of 20-48 (chosen) and 10-48 (rejected) words drawn
from a fixed vocabulary: about the lengths of the demo's answers (max_new_tokens 64). Both paths must train the same
adapters: the largest difference of any adapter weight between them is printed (the reference log-probabilities of
the two paths agree to float32 rounding, so this is float noise amplified by the steps).
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import torch
from peft import get_peft_model_state_dict

from dpo_baseline import train_member_trl_reference
from sparta.backends.hf.pool import ModelPool
from sparta.backends.hf.training import train_member
from sparta.config import LoraConfig, PoolConfig, TrainingConfig
from sparta.demo import demo_config
from sparta.records import PreferencePair
from sparta.tasks import procedural_instructions

TARGET_OUTSIDE_STEPS = 0.20
PATHS = {"trl": train_member_trl_reference, "ours": train_member}
"""The old path (TRL's own reference pass, ``dpo_baseline.py``) and today's."""
_WORDS = (
    "the answer is because first then so we add take result number each step total sum equals check that this "
    "value gives correct left right more less than one two three four five six seven eight nine ten"
).split()


def preference_pairs(count: int, seed: int) -> list[PreferencePair]:
    """``count`` pairs on procedural instructions, with answers of demo-like lengths (module docstring)."""
    rng = random.Random(seed)
    return [
        PreferencePair(
            prompt=instruction.text,
            chosen=" ".join(rng.choices(_WORDS, k=rng.randint(20, 48))) + ".",
            rejected=" ".join(rng.choices(_WORDS, k=rng.randint(10, 48))) + ".",
            chosen_model="a",
            rejected_model="b",
            margin=1.0,
            instruction_id=instruction.id,
        )
        for instruction in procedural_instructions(count, seed=seed)
    ]


def _demo_pool(model_name: str, seed: int) -> tuple[ModelPool, TrainingConfig]:
    config = demo_config()
    members = [member.model_copy(update={"model": model_name}) for member in config.pool.members]
    pool_config = PoolConfig(members=members, max_prompt_tokens=config.pool.max_prompt_tokens)
    lora = LoraConfig(**config.training.lora.model_dump())
    return ModelPool(pool_config, lora, seed=seed), config.training.model_copy(update={"max_length": None})


def _adapter(pool: ModelPool, member: str) -> dict[str, torch.Tensor]:
    return get_peft_model_state_dict(pool.model(member), adapter_name=member)


def _largest_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[key] - b[key]).abs().max()) for key in a)


def _timing(metrics: dict) -> dict:
    total, steps, reference = metrics["seconds"], metrics["seconds_in_steps"], metrics["seconds_reference"]
    return {
        "total": total,
        "steps": steps,
        "reference": reference,
        "other": total - steps - reference,
        "outside_share": (total - steps) / total,
        "optimizer_steps": metrics["steps"],
        "loss": metrics["loss"],
    }


def bench_dpo(model_name: str, pairs: int, seed: int, stage, members: int = 4) -> dict:
    """Train the first ``members`` members of a demo pool on ``pairs`` pairs by both paths; timings per member."""
    started = time.perf_counter()
    stage(f"{model_name}: DPO, loading two copies of a 4-member pool")
    pools = {path: _demo_pool(model_name, seed) for path in PATHS}
    training = next(iter(pools.values()))[1]
    data = preference_pairs(pairs, seed)
    timings: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="sparta-dpo-bench-") as scratch:
        for index, member in enumerate(next(iter(pools.values()))[0].members[:members]):
            timings[member] = {}
            for path, train in PATHS.items():
                stage(f"{model_name}: DPO of {member} on {pairs} pairs, {path}")
                metrics = train(pools[path][0], member, data, Path(scratch) / path / member, training, seed + index)
                timings[member][path] = _timing(metrics)
            adapters = [_adapter(pool, member) for pool, _ in pools.values()]
            timings[member]["largest_adapter_gap"] = _largest_gap(*adapters)
    totals = {path: _sums([timings[m][path] for m in timings]) for path in PATHS}
    seconds = time.perf_counter() - started
    return {"model": model_name, "pairs": pairs, "members": timings, "totals": totals, "seconds": seconds}


def _sums(rows: list[dict]) -> dict:
    keys = ("total", "steps", "reference", "other", "optimizer_steps")
    sums = {key: sum(row[key] for row in rows) for key in keys}
    return {**sums, "outside_share": (sums["total"] - sums["steps"]) / sums["total"]}


def dpo_rows(result: dict) -> list[tuple[str, ...]]:
    """(member, path, total, steps, reference, other, outside steps, verdict) rows."""
    rows = []
    named = [*((member, result["members"][member]) for member in result["members"]), ("all members", result["totals"])]
    for member, by_path in named:
        for path in PATHS:
            t = by_path[path]
            verdict = ""
            if path == "ours":
                verdict = "PASS" if t["outside_share"] <= TARGET_OUTSIDE_STEPS else "FAIL"
            seconds = [f"{t[key]:.1f}" for key in ("total", "steps", "reference", "other")]
            rows.append((member, path, *seconds, f"{100 * t['outside_share']:.1f}%", verdict))
    return rows


def print_dpo(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    threads = torch.get_num_threads()
    title = (
        f"{result['model']}: DPO per member, {result['pairs']} pairs, {threads} threads "
        f"({result['seconds']:.0f} s); target: outside steps <= {100 * TARGET_OUTSIDE_STEPS:.0f}% on ours"
    )
    table = Table(title=title)
    for column in ("member", "path", "total s", "steps s", "ref s", "other s", "outside", ""):
        table.add_column(column)
    for row in dpo_rows(result):
        style = {"PASS": "green", "FAIL": "red"}.get(row[-1], "")
        table.add_row(*row[:-1], f"[{style}]{row[-1]}[/{style}]" if style else "")
    Console().print(table)
    gaps = {member: by_path["largest_adapter_gap"] for member, by_path in result["members"].items()}
    print("largest adapter weight difference between the paths: " + ", ".join(f"{m} {g:.2e}" for m, g in gaps.items()))
