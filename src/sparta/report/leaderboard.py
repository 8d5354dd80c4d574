"""The final leaderboard of a run: SPARTA reputation beside a Bradley-Terry fit of the last round's outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparta.pipeline.state import RunState
from sparta.rundir import read_json, read_jsonl, round_dir
from sparta.tournament.bradley_terry import leaderboard_rows

Outcome = tuple[str, str, float]


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


def run_leaderboard(run_dir: Path, n_boot: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """Rows sorted by Bradley-Terry rating of the last rated round, with the reputation after it."""
    state = RunState.load(run_dir / "state.json")
    rounds = rated_rounds(run_dir)
    outcomes = outcomes_of_round(run_dir, rounds[-1]) if rounds else []
    return leaderboard_rows(state.reputation.ratings, outcomes, state.members, n_boot=n_boot, seed=seed)


def round_summaries(run_dir: Path) -> list[dict[str, Any]]:
    """Per round: matches, rated matches, pairs kept, judgments and judge failures."""
    rows = []
    for r in rated_rounds(run_dir):
        rd = round_dir(run_dir, r)
        judgments = read_jsonl(rd / "judgments.jsonl")
        outcomes = read_jsonl(rd / "outcomes.jsonl")
        training = read_json(rd / "training.json") if (rd / "training.json").exists() else {}
        rows.append(
            {
                "round": r,
                "matches": len(outcomes),
                "rated": sum(o["rated"] for o in outcomes),
                "pairs": len(read_jsonl(rd / "pairs.jsonl")),
                "judgments": len(judgments),
                "judge_failures": sum(j["score"] is None for j in judgments),
                "training": training,
            }
        )
    return rows
