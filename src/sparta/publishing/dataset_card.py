"""The dataset card (README.md) of exported pairs: Hugging Face metadata, then what the data is and how it was made."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from sparta.config import SpartaConfig, dump_config
from sparta.pipeline.state import RunState

CARD_TAG = "sparta-align"
"""A tag every card of ours carries; an output directory whose card has it holds an earlier export."""

JUDGE_TYPES = {
    "generate": "the judge writes a 1-10 score for each answer (the paper's prompted judge)",
    "logprob": "the expected 1-10 score under the judge's next-token distribution",
    "likelihood": "1 + 9 x the judge's own length-normalised probability of the answer (no prompt)",
}

COLUMN_MEANINGS = {
    "round": "the SPARTA round whose combats produced the pair (1 = the first)",
    "prompt": "the instruction both members answered",
    "chosen": "the answer with the higher aggregated judge score",
    "rejected": "the other answer",
    "chosen_model": "the pool member that wrote `chosen`",
    "rejected_model": "the pool member that wrote `rejected`",
    "margin": "aggregated score of `chosen` minus that of `rejected` (1-10 scale, > 0)",
    "instruction_id": "the instruction's id in its source task",
    "domain": "the instruction's domain in its source task",
}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _header(config: SpartaConfig) -> str:
    """Hugging Face metadata. No ``configs:`` block: with one, datasets 5.2 caches the data under a key that ignores
    the files' modification times, so loading a re-export in the same directory returns the earlier export. The
    file name ``data/train-*.parquet`` already makes the ``train`` split."""
    metadata = {
        "pretty_name": f"SPARTA preference pairs: {config.run.name}",
        "tags": [CARD_TAG, "sparta", "dpo", "preference", "synthetic"],
        "task_categories": ["text-generation"],
    }
    return f"---\n{yaml.safe_dump(metadata, sort_keys=False)}---\n"


def _pool(config: SpartaConfig, state: RunState) -> list[str]:
    ratings = state.reputation.ratings
    lines = ["| member | model | adapter | reputation at export |", "|---|---|---|---|"]
    for member in config.pool.members:
        model = f"clone of {member.clone_of}" if member.clone_of else member.model
        adapter = member.adapter or "(none: a fresh LoRA)"
        lines.append(f"| {_cell(member.name)} | {_cell(model)} | {_cell(adapter)} | {ratings[member.name]:.2f} |")
    return lines


PANEL_WORDS = {
    "others": "every member not in the match",
    "all": "every member",
    "external": "one fixed judge outside the pool (`judge.external`)",
}
"""``tournament.judges`` in words."""


def _judge(config: SpartaConfig) -> list[str]:
    judged_by = PANEL_WORDS.get(config.tournament.judges, f"the `{config.tournament.judges}` panel")
    return [
        f"- judge type: `{config.judge.type}`: {JUDGE_TYPES.get(config.judge.type, 'a registered judge type')}",
        f"- who judges: {judged_by}",
        f"- aggregation of the judges' scores: `{config.tournament.aggregation}`",
        f"- dropped: ties and pairs whose margin is below `tournament.min_margin` = {config.tournament.min_margin}",
    ]


def dataset_card(config: SpartaConfig, state: RunState, rows_per_round: Mapping[int, int]) -> str:
    """README.md for the exported pairs of a run (``rows_per_round``: round -> pairs)."""
    body = [
        f"# SPARTA preference pairs: {config.run.name}",
        "",
        "Preference pairs made by sparta-align, an implementation of SPARTA (NeurIPS 2025, "
        "[arXiv 2506.04721](https://arxiv.org/abs/2506.04721)): in each "
        "round two members of a pool of models answer an instruction, the other members judge both answers, the "
        "judges' scores are weighted by each judge's reputation, and the better-scored answer becomes `chosen`. No "
        "reward model, human label or gold answer is involved. `prompt`/`chosen`/`rejected` is TRL's preference "
        "format.",
        "",
        "```python",
        "from datasets import load_dataset",
        'pairs = load_dataset("PATH_OR_REPO")["train"]',
        'round_3 = pairs.filter(lambda row: row["round"] == 3)',
        "```",
        "",
        "## Pairs per round",
        "",
        "| round | pairs |",
        "|---|---|",
        *(f"| {round_index} | {count} |" for round_index, count in sorted(rows_per_round.items())),
        f"| all | {sum(rows_per_round.values())} |",
        "",
        "## Pool",
        "",
        *_pool(config, state),
        "",
        "## Judge",
        "",
        *_judge(config),
        "",
        "## Columns",
        "",
        "| column | meaning |",
        "|---|---|",
        *(f"| `{name}` | {meaning} |" for name, meaning in COLUMN_MEANINGS.items()),
        "",
        "## The run's configuration",
        "",
        "```yaml",
        dump_config(config).rstrip(),
        "```",
        "",
    ]
    return _header(config) + "\n".join(body)
