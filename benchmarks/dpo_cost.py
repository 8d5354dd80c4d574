"""The DPO section of round_cost.py (``--dpo``): where a member's training time goes, today's path beside the old one.

A pool of the demo's four members (their system prompts, LoRA r 8, the demo's DPO settings: beta 0.1, lr 5e-5,
batch 4, one epoch) trains every member on the same ``--dpo-pairs`` preference pairs, three times, member by member
in turns, each path on its own copy of the pool:

- *trl*: TRL's own reference pass (``dpo_baseline.py``: the path before ours);
- *ours*: today's ``train_member`` on its own, as after a round judged by the logprob or generate judge;
- *judged*: today's ``train_member`` after the round's likelihood judging, as in the demo: every pair is a match
  of two members (the six pairings of four in turn), judged by the other two (``tournament.judges: others``), all
  before anyone trains; the log-probabilities its judgments carry then serve as the reference of the pairs a member
  judged (``answer_logps``), as a round reads them from its judgments. The judging is the round's, timed apart, not
  part of DPO.

Per member and path:

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

import itertools
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import get_peft_model_state_dict

from dpo_baseline import train_member_trl_reference
from sparta.backends.hf.answer_logps import judged_references
from sparta.backends.hf.judges import LikelihoodJudge
from sparta.backends.hf.pool import ModelPool
from sparta.backends.hf.training import train_member
from sparta.config import JudgeConfig, LoraConfig, PoolConfig, TrainingConfig
from sparta.demo import demo_config
from sparta.records import Instruction, JudgeRequest, Match, PreferencePair, Response
from sparta.tasks import procedural_instructions
from sparta.tournament.panels import others

TARGET_OUTSIDE_STEPS = 0.20
PATHS = {"trl": train_member_trl_reference, "ours": train_member, "judged": train_member}
"""The old path (TRL's own reference pass, ``dpo_baseline.py``), today's, and today's after likelihood judging."""
JUDGED_FIRST = "judged"
TODAY = ("ours", "judged")
_WORDS = (
    "the answer is because first then so we add take result number each step total sum equals check that this "
    "value gives correct left right more less than one two three four five six seven eight nine ten"
).split()


def preference_pairs(count: int, seed: int, members: Sequence[str] = ("a", "b")) -> list[PreferencePair]:
    """``count`` pairs on procedural instructions, with answers of demo-like lengths (module docstring), each
    between two of ``members``: their pairings in turn."""
    rng = random.Random(seed)
    pairings = list(itertools.combinations(members, 2))
    return [
        PreferencePair(
            prompt=instruction.text,
            chosen=" ".join(rng.choices(_WORDS, k=rng.randint(20, 48))) + ".",
            rejected=" ".join(rng.choices(_WORDS, k=rng.randint(10, 48))) + ".",
            chosen_model=pairings[k % len(pairings)][0],
            rejected_model=pairings[k % len(pairings)][1],
            margin=1.0,
            instruction_id=instruction.id,
        )
        for k, instruction in enumerate(procedural_instructions(count, seed=seed))
    ]


def judge_requests(pairs: Sequence[PreferencePair], members: Sequence[str]) -> list[JudgeRequest]:
    """What a round with ``tournament.judges: others`` asks about the pairs' answers: both, of every member that
    did not write them."""
    requests = []
    for index, pair in enumerate(pairs):
        instruction = Instruction(pair.instruction_id, pair.prompt)
        answers = ((pair.chosen_model, pair.chosen), (pair.rejected_model, pair.rejected))
        for judge in others(Match(index, instruction, pair.chosen_model, pair.rejected_model), members):
            requests += [
                JudgeRequest(judge, instruction, Response(pair.instruction_id, m, text)) for m, text in answers
            ]
    return requests


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
        "pairs_reference_reused": metrics.get("pairs_reference_reused", 0),
    }


def bench_dpo(model_name: str, pairs: int, seed: int, stage, members: int = 4) -> dict:
    """Train the first ``members`` members of a demo pool on ``pairs`` pairs by both paths; timings per member."""
    started = time.perf_counter()
    stage(f"{model_name}: DPO, loading {len(PATHS)} copies of a 4-member pool")
    pools = {path: _demo_pool(model_name, seed) for path in PATHS}
    training = next(iter(pools.values()))[1]
    names = pools[JUDGED_FIRST][0].members
    data = preference_pairs(pairs, seed, names)
    requests = judge_requests(data, names)
    stage(f"{model_name}: the round's likelihood judging, {len(requests)} judgments ({JUDGED_FIRST} path)")
    judging_start = time.perf_counter()
    judgments = LikelihoodJudge(pools[JUDGED_FIRST][0], JudgeConfig(type="likelihood", batch_size=8)).score(requests)
    judging = {"judgments": len(requests), "seconds": time.perf_counter() - judging_start}
    judged = judged_references(judgments)
    timings: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="sparta-dpo-bench-") as scratch:
        for index, member in enumerate(names[:members]):
            timings[member] = {}
            for path, train in PATHS.items():
                stage(f"{model_name}: DPO of {member} on {pairs} pairs, {path}")
                options = {"judged": judged.get(member, {})} if path == JUDGED_FIRST else {}
                out = Path(scratch) / path / member
                metrics = train(pools[path][0], member, data, out, training, seed + index, **options)
                timings[member][path] = _timing(metrics)
            adapters = {path: _adapter(pool, member) for path, (pool, _) in pools.items()}
            timings[member]["largest_adapter_gap"] = max(
                _largest_gap(adapters["trl"], adapters[path]) for path in TODAY
            )
    totals = {path: _sums([timings[m][path] for m in timings]) for path in PATHS}
    seconds = time.perf_counter() - started
    return {
        "model": model_name,
        "pairs": pairs,
        "members": timings,
        "totals": totals,
        "judging": judging,
        "seconds": seconds,
    }


def _sums(rows: list[dict]) -> dict:
    keys = ("total", "steps", "reference", "other", "optimizer_steps", "pairs_reference_reused")
    sums = {key: sum(row[key] for row in rows) for key in keys}
    return {**sums, "outside_share": (sums["total"] - sums["steps"]) / sums["total"]}


def dpo_rows(result: dict) -> list[tuple[str, ...]]:
    """(member, path, total, steps, reference, other, pairs with a reused reference, outside steps, verdict) rows."""
    rows = []
    named = [*((member, result["members"][member]) for member in result["members"]), ("all members", result["totals"])]
    for member, by_path in named:
        for path in PATHS:
            t = by_path[path]
            verdict = ""
            if path in TODAY:
                verdict = "PASS" if t["outside_share"] <= TARGET_OUTSIDE_STEPS else "FAIL"
            seconds = [f"{t[key]:.1f}" for key in ("total", "steps", "reference", "other")]
            reused = str(t.get("pairs_reference_reused", "")) if path == JUDGED_FIRST else ""
            rows.append((member, path, *seconds, reused, f"{100 * t['outside_share']:.1f}%", verdict))
    return rows


def print_dpo(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    threads = torch.get_num_threads()
    title = (
        f"{result['model']}: DPO per member, {result['pairs']} pairs, {threads} threads "
        f"({result['seconds']:.0f} s); target: outside steps <= {100 * TARGET_OUTSIDE_STEPS:.0f}% on today's paths"
    )
    table = Table(title=title)
    for column in ("member", "path", "total s", "steps s", "ref s", "other s", "reused", "outside", ""):
        table.add_column(column)
    for row in dpo_rows(result):
        style = {"PASS": "green", "FAIL": "red"}.get(row[-1], "")
        table.add_row(*row[:-1], f"[{style}]{row[-1]}[/{style}]" if style else "")
    Console().print(table)
    gaps = {member: by_path["largest_adapter_gap"] for member, by_path in result["members"].items()}
    judging = result.get("judging")
    if judging:
        print(
            f"the round's likelihood judging ({JUDGED_FIRST} path): {judging['judgments']} judgments in "
            f"{judging['seconds']:.1f} s, before any DPO and not counted in it"
        )
    print("largest adapter weight difference from the trl path: " + ", ".join(f"{m} {g:.2e}" for m, g in gaps.items()))
