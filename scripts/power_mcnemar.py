"""What accuracy difference can the paired test of `sparta eval` detect? McNemar's exact test, exact power.

    python scripts/power_mcnemar.py --responses pools/demo/diversity.json --items 100,200,300,400
    python scripts/power_mcnemar.py --discordance 0.15,0.25 --items 200 --alpha 0.05 --power 0.8

--responses reads greedy answers scored against gold answers, one row per (member, item): init-pool's
diversity.json ("responses", field "correct") or an evaluation's RUN/eval_responses/round_RRR/TASK.jsonl (field
"score", 0 or 1). It prints the discordance of every pair of members (the share of items one got right and the other
wrong) and uses their mean, min and max. For each number of items N it prints the smallest accuracy difference
detected with the given power (sparta.evaluation.power: no normal approximation).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from sparta.evaluation.power import detectable_difference, discordance_rate


def correctness(path: Path) -> dict[str, dict[str, bool]]:
    """member -> item id -> right or wrong, from diversity.json or an eval responses file."""
    text = path.read_text()
    rows = json.loads(text)["responses"] if path.suffix == ".json" else [json.loads(x) for x in text.splitlines()]
    table: dict[str, dict[str, bool]] = defaultdict(dict)
    for row in rows:
        right = row["correct"] if "correct" in row else row["score"] == 1
        table[row["member"]][row["instruction_id"]] = bool(right)
    return table


def pairwise_discordance(table: dict[str, dict[str, bool]]) -> dict[tuple[str, str], float]:
    rates = {}
    for a, b in combinations(sorted(table), 2):
        items = sorted(table[a].keys() & table[b].keys())
        rates[(a, b)] = discordance_rate([table[a][i] for i in items], [table[b][i] for i in items])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=Path, help="diversity.json or eval_responses/.../TASK.jsonl")
    parser.add_argument("--discordance", default="", help="comma-separated discordance rates to add")
    parser.add_argument("--items", default="100,200,300,400", help="comma-separated numbers of evaluation items")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--power", type=float, default=0.8)
    args = parser.parse_args()
    rates = [float(x) for x in args.discordance.split(",") if x]
    if args.responses:
        measured = pairwise_discordance(correctness(args.responses))
        for (a, b), rate in measured.items():
            print(f"discordance {a} / {b}: {rate:.3f}")
        values = sorted(measured.values())
        mean = sum(values) / len(values)
        print(f"pairs: {len(values)}; min {values[0]:.3f}, mean {mean:.3f}, max {values[-1]:.3f}")
        rates += [round(values[0], 3), round(mean, 3), round(values[-1], 3)]
    if not rates:
        parser.error("give --responses or --discordance")
    rates = sorted(set(rates))
    print(f"\nsmallest detectable accuracy difference (McNemar exact, alpha {args.alpha}, power {args.power}):\n")
    print("| items | " + " | ".join(f"d = {d:.3f}" for d in rates) + " |")
    print("|---|" + "---|" * len(rates))
    for n_items in (int(x) for x in args.items.split(",")):
        cells = [detectable_difference(n_items, d, args.alpha, args.power) for d in rates]
        print(f"| {n_items} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
