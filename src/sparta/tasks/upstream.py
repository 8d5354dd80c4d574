"""Where the SPARTA authors' instruction sets come from, so a missing file is met with how to get it.

The project does not ship these files (their upstream licences differ, see DESIGN section 5). Each was published
in the authors' repository; where an equivalent Hugging Face dataset exists, the ``hf_dataset`` task reads it
instead (its records differ from the authors' selection, so results are not directly comparable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AUTHORS_REPOSITORY = "https://github.com/yurujiang2003/sparta"


@dataclass(frozen=True)
class Upstream:
    """One instruction set: what it is, its file in the authors' repository, and a hub alternative if any."""

    what: str
    authors_path: str
    hub: str | None = None


UPSTREAM: dict[str, Upstream] = {
    "math": Upstream(
        "MATH levels 1-2 (Hendrycks et al., MIT)",
        "data/MATH/train_by_difficulty/easy.jsonl",
        "task: hf_dataset, options: {path: EleutherAI/hendrycks_math, config_name: algebra, prompt_field: problem}",
    ),
    "gsm8k": Upstream(
        "GSM8K training questions (MIT)",
        "data/gsm8k/questions.json",
        "task: hf_dataset, options: {path: openai/gsm8k, config_name: main, prompt_field: question}",
    ),
    "com2": Upstream("COM2 commonsense questions (MIT)", "data/com2/train.json"),
    "normad": Upstream("NormAd cultural-norm questions (CC-BY-4.0)", "data/culture/country_value_dataset.json"),
    "knowledge_crosswords": Upstream("Knowledge Crosswords questions", "data/knowledge_crosswords/train.json"),
    "truthfulqa": Upstream(
        "TruthfulQA judgement prompts (Apache-2.0)",
        "data/truthfulqa/data_train.jsonl",
        "task: hf_dataset, options: {path: truthfulqa/truthful_qa, config_name: generation, split: validation, "
        "prompt_field: question}",
    ),
}


def missing_file_message(task: str, path: Path) -> str:
    """``path`` is missing: what the file is and how to get it."""
    source = UPSTREAM[task]
    text = (
        f"task {task!r}: {path} does not exist. It is {source.what} as published in the SPARTA authors' repository "
        f"({AUTHORS_REPOSITORY}, file {source.authors_path}); download it and set the task's options.path to it"
    )
    return text + (f", or read it from the Hugging Face Hub: {source.hub}" if source.hub else "")
