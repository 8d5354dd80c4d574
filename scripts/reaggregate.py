"""How many preference labels of a finished run would change under another aggregation?

Re-reads every round's matches, responses and judgments, recomputes the pairs with the ratings the run ended that
round with, under the run's aggregation and under the other one, and counts the pairs whose chosen side differs.
When nothing differs in round 1, an ablation run with the other aggregation would train on the same pairs and
follow the same path: the comparison can be read off without spending compute on it.

    python scripts/reaggregate.py runs/experiment/smollm2
"""

from __future__ import annotations

import sys
from pathlib import Path

from sparta.config import load_config
from sparta.records import Judgment, Match, Response
from sparta.rundir import read_json, read_jsonl, round_dir
from sparta.tournament import preference_pairs, score_table


def compare(run_dir: Path) -> list[dict[str, object]]:
    config = load_config(run_dir / "config.yaml")
    other = "uniform" if config.tournament.aggregation == "reputation" else "reputation"
    rows = []
    r = 1
    while (round_dir(run_dir, r) / "ratings.json").exists():
        rd = round_dir(run_dir, r)
        matches = [Match.from_dict(d) for d in read_jsonl(rd / "matches.jsonl")]
        responses = {
            (x.instruction_id, x.model): x for x in map(Response.from_dict, read_jsonl(rd / "responses.jsonl"))
        }
        table = score_table(Judgment.from_dict(d) for d in read_jsonl(rd / "judgments.jsonl"))
        ratings = read_json(rd / "ratings.json")["ratings"]
        mine = {
            p.instruction_id: p.chosen_model
            for p in preference_pairs(matches, responses, table, ratings, config.tournament)
        }
        alt_cfg = config.tournament.model_copy(update={"aggregation": other})
        theirs = {
            p.instruction_id: p.chosen_model for p in preference_pairs(matches, responses, table, ratings, alt_cfg)
        }
        flipped = sum(mine[i] != theirs[i] for i in mine.keys() & theirs.keys())
        rows.append(
            {
                "round": r,
                "pairs": len(mine),
                f"pairs under {other}": len(theirs),
                "labels flipped": flipped,
                "rating spread": max(ratings.values()) - min(ratings.values()),
            }
        )
        r += 1
    return rows


if __name__ == "__main__":
    for row in compare(Path(sys.argv[1])):
        print(row)
