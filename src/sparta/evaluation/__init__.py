"""Evaluation of a finished (or running) SPARTA run: every member, at chosen rounds, on held-out items.

    from sparta.evaluation import evaluate_run, eval_table_rows
    run = evaluate_run(Path("runs/tiny"), rounds=None, tasks=None, limit=50, reporter=None)
    for row in eval_table_rows(run.results): print(row)

Results land in the run directory: ``eval.json`` (its model: ``sparta.evaluation.results.EvalResults``, read
back with ``load_results``), ``eval.csv`` and ``eval_responses/round_RRR/TASK.jsonl``; finished
(round, task, member) cells are cached in ``eval_cache/``.
"""

from sparta.evaluation.bootstrap import Interval, bootstrap_mean
from sparta.evaluation.results import EvalFileError, EvalResults, load_results
from sparta.evaluation.rounds import RoundError
from sparta.evaluation.runner import EvalError, EvalRun, evaluate_run
from sparta.evaluation.scoring import EVAL_SCORERS
from sparta.evaluation.specs import DEFAULT_LIMIT, EvalSpecError, EvalTaskSpec
from sparta.evaluation.table import eval_table_rows, format_change, format_interval, paired_table_rows

__all__ = [
    "DEFAULT_LIMIT",
    "EVAL_SCORERS",
    "EvalError",
    "EvalFileError",
    "EvalResults",
    "EvalRun",
    "EvalSpecError",
    "EvalTaskSpec",
    "Interval",
    "RoundError",
    "bootstrap_mean",
    "eval_table_rows",
    "evaluate_run",
    "format_change",
    "format_interval",
    "load_results",
    "paired_table_rows",
]
