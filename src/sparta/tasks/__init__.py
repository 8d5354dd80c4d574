"""Instruction sets (a registry of loaders), the procedural suite, hold-out splits, per-round draws and scorers.

from sparta.tasks import load_task, split_holdout, draw_round, score_answer
instructions = load_task("math", {"path": "data/math/easy.jsonl"})
train, heldout = split_holdout(instructions, 0.2, seed=0)
batch = draw_round(train, n=100, round_index=1, seed=0)
score_answer("math", "... so the answer is \\boxed{\\frac12}", "0.5")  # 1.0
"""

from sparta.tasks.registry import TASKS, TaskError, TaskFileNotFoundError, TaskOptionsError, load_task, task_names  # isort: skip
from sparta.tasks import generic, mixture, procedural, sparta_formats  # noqa: F401  (registers the loaders)
from sparta.tasks.bad_records import LoadedInstructions, Location, TaskDataError
from sparta.tasks.procedural import procedural_domains, procedural_expert_examples, procedural_instructions
from sparta.tasks.scorers import SCORERS, extract_answer, score_answer
from sparta.tasks.split import draw_round, round_seed, split_holdout

__all__ = [
    "TASKS",
    "SCORERS",
    "LoadedInstructions",
    "Location",
    "TaskDataError",
    "TaskError",
    "TaskFileNotFoundError",
    "TaskOptionsError",
    "load_task",
    "task_names",
    "procedural_domains",
    "procedural_expert_examples",
    "procedural_instructions",
    "extract_answer",
    "score_answer",
    "draw_round",
    "round_seed",
    "split_holdout",
]
