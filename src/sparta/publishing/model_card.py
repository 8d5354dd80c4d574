"""The model card (README.md) of an exported member: Hugging Face metadata naming a base that loads, then where the
member comes from (run, round, adapter), how SPARTA trained it, what its chat template does not carry (system prompt,
sampling) and its scores in the run's evaluation (``eval.json``, when ``sparta eval`` has run)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sparta.config import MemberConfig, SpartaConfig
from sparta.evaluation.results import EVAL_JSON
from sparta.rundir import read_json

MODEL_CARD = "README.md"


def _header(base: str, merged: bool) -> str:
    metadata = {
        "base_model": base,
        "library_name": "transformers" if merged else "peft",
        "pipeline_tag": "text-generation",
        "tags": ["sparta-align", "sparta", "dpo", "lora"],
    }
    return f"---\n{yaml.safe_dump(metadata, sort_keys=False)}---\n"


def _score(entry: Mapping[str, Any]) -> str:
    if entry.get("score") is None:
        return "n/a"
    interval = f" [{entry['low']:.3f}, {entry['high']:.3f}]" if entry.get("low") is not None else ""
    return f"{entry['score']:.3f}{interval} (n={entry.get('n')})"


def evaluation_rows(run_dir: Path, member: str) -> list[str]:
    """The member's rows of the run's ``eval.json`` as a markdown table (none when the run was not evaluated)."""
    path = Path(run_dir) / EVAL_JSON
    if not path.is_file():
        return ["The run has not been evaluated (`sparta eval RUN` adds this table to later exports)."]
    scores = [s for s in read_json(path).get("scores", []) if s.get("member") == member]
    lines = ["| task | round | score [95% CI] (items) |", "|---|---|---|"]
    lines += [
        f"| {s['task']} | {s['round']} | {_score(s)} |" for s in sorted(scores, key=lambda s: (s["task"], s["round"]))
    ]
    return lines


def _training(config: SpartaConfig, round_index: int) -> list[str]:
    members = ", ".join(f"`{m.name}`" for m in config.pool.members)
    return [
        f"- rounds of SPARTA behind this export: {round_index} (0 = the member as configured, before any combat)",
        f"- pool: {len(config.pool.members)} members ({members}), {config.run.instructions_per_round} instructions "
        f"per round from task `{config.data.task}`",
        f"- judge: `{config.judge.type}`, aggregation `{config.tournament.aggregation}`",
        f"- DPO: beta {config.training.beta}, learning rate {config.training.learning_rate}, "
        f"LoRA r {config.training.lora.r} / alpha {config.training.lora.alpha} (a fresh adapter's shape)",
    ]


def _usage(merged: bool) -> list[str]:
    loader = "AutoModelForCausalLM" if merged else "AutoPeftModelForCausalLM"
    package = "transformers" if merged else "peft"
    return [
        "```python",
        f"from {package} import {loader}",
        "from transformers import AutoTokenizer",
        f'model = {loader}.from_pretrained("PATH_OR_REPO")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO")',
        "```",
    ]


def model_card(
    run_dir: Path, config: SpartaConfig, member: MemberConfig, round_index: int, merged: bool, base: str
) -> str:
    """README.md for ``member`` of the run in ``run_dir`` at ``round_index``, exported merged or as its adapter."""
    form = "the base with the member's LoRA merged in" if merged else f"a LoRA adapter on `{base}`"
    body = [
        f"# {member.name}: SPARTA round {round_index} of {config.run.name}",
        "",
        f"A member of a pool aligned with sparta-align, an implementation of SPARTA (NeurIPS 2025, "
        f"[arXiv 2506.04721](https://arxiv.org/abs/2506.04721)). This export is {form}.",
        "",
        *_usage(merged),
        "",
        "## How it was made",
        "",
        f"- base model: `{base}`",
        f"- initial adapter: `{member.adapter}`" if member.adapter else "- initial adapter: none (a fresh LoRA)",
        *_training(config, round_index),
        "",
        "A chat template does not carry these; answer with them to get the member's answers:",
        "",
        f"- system prompt: {member.system_prompt!r}",
        f"- sampling: {(member.sampling or config.pool.sampling).model_dump(mode='json')}",
        "",
        "## Evaluation in the run",
        "",
        *evaluation_rows(run_dir, member.name),
        "",
    ]
    return _header(base, merged) + "\n".join(body)
