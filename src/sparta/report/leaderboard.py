"""The final leaderboard of a run: SPARTA reputation after the last round beside a Bradley-Terry fit of every
round's outcomes (the order-free summary of all the matches the run played)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparta.pipeline.state import RunState
from sparta.records import Response
from sparta.rundir import JUDGMENTS, OUTCOMES, PAIRS, RESPONSES, TRAINING, read_json, read_jsonl, round_dir
from sparta.tournament.bradley_terry import leaderboard_rows

Outcome = tuple[str, str, float]

LEADERBOARD_TITLE = "Leaderboard: reputation after the last round, Bradley-Terry and W-L-T over all rounds"


def outcomes_of_round(run_dir: Path, r: int) -> list[Outcome]:
    """(a, b, share won by a) for every rated match of round ``r``: 1, 0, or 0.5 for a tie."""
    rows = read_jsonl(round_dir(run_dir, r) / "outcomes.jsonl")
    result = []
    for o in rows:
        if not o["rated"]:
            continue
        sa, sb = o["score_a"], o["score_b"]
        result.append((o["model_a"], o["model_b"], 1.0 if sa > sb else 0.0 if sa < sb else 0.5))
    return result


def rated_rounds(run_dir: Path) -> list[int]:
    state = RunState.load(run_dir / "state.json")
    return sorted(r for r in state.finished if state.done(r, "ratings"))


def outcomes_of_run(run_dir: Path) -> list[Outcome]:
    """The rated outcomes of every rated round, in round and update order."""
    return [o for r in rated_rounds(run_dir) for o in outcomes_of_round(run_dir, r)]


def run_leaderboard(run_dir: Path, n_boot: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """Rows sorted by a Bradley-Terry fit of all rounds' outcomes, with the reputation after the last round.

    Members change from round to round (they train), so the fit summarises the run as a whole, as users read a
    leaderboard; the reputation column is where the online update ended.
    """
    state = RunState.load(run_dir / "state.json")
    outcomes = outcomes_of_run(run_dir)
    return leaderboard_rows(state.reputation.ratings, outcomes, state.members, n_boot=n_boot, seed=seed)


def round_summaries(run_dir: Path) -> list[dict[str, Any]]:
    """Per round: matches, rated matches, pairs kept, judgments, judge failures, and what cut answers cost.

    ``truncated_answers`` counts the round's answers cut by ``max_new_tokens`` (from its responses, so runs of any
    version have it); ``pairs_dropped_truncated`` the pairs not trained on for a cut answer and ``pairs_too_long``
    the most pairs any member could not train on whole within ``training.max_length`` (both None when the round's
    training.json does not say).
    """
    rows = []
    for r in rated_rounds(run_dir):
        rd = round_dir(run_dir, r)
        judgments = read_jsonl(rd / JUDGMENTS)
        outcomes = read_jsonl(rd / OUTCOMES)
        training = read_json(rd / TRAINING) if (rd / TRAINING).exists() else {}
        rows.append(
            {
                "round": r,
                "matches": len(outcomes),
                "rated": sum(o["rated"] for o in outcomes),
                "pairs": len(read_jsonl(rd / PAIRS)),
                "judgments": len(judgments),
                "judge_failures": sum(j["score"] is None for j in judgments),
                "truncated_answers": _truncated_answers(rd / RESPONSES),
                "pairs_dropped_truncated": training.get("pairs_dropped_truncated"),
                "pairs_too_long": _most_too_long(training),
                "training": training,
            }
        )
    return rows


def _truncated_answers(path: Path) -> int | None:
    if not path.exists():
        return None
    return sum(Response.from_dict(row).truncated for row in read_jsonl(path))


def _most_too_long(training: dict[str, Any]) -> int | None:
    counts = [m["pairs_too_long"] for m in training.get("members", {}).values() if "pairs_too_long" in m]
    if counts:
        return max(counts)
    return 0 if "pairs_dropped_truncated" in training else None  # a tribe that drops nothing for length
