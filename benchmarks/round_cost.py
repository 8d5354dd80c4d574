"""What a SPARTA round costs on this machine, the per-member path before mixed batches beside today's, in one run.

A measurement, not a test (always exits 0): it prints one table with PASS/FAIL next to each target of issue 11
and writes every number with ``--json PATH``. Sections (all by default):

    answering  M members x R requests, fixed-length answers: per-member batches (baseline.py) vs mixed batches;
               and how many answers stay identical when the batches are composed differently (fp32)
    judging    the likelihood and logprob judges on every match's judge requests: per-member batches vs mixed
               batches without and with shared prefixes; judgments/s and the largest score difference
    precision  pool.dtype auto's probe on this machine: what it measures and picks
    round      one demo round (answer, judge, train) in fresh processes: old paths (DPO too) and threads vs new
    shared     the new demo round again beside another CPU-bound process (--neighbour), against its quiet time
    dpo        where a member's DPO time goes: TRL's own reference pass, ours, ours after likelihood judging
               (dpo_cost.py)

    python benchmarks/round_cost.py                       # SmolLM2, issue 11's sizes (about 46 min on 2 quiet cores)
    python benchmarks/round_cost.py --quick               # tiny-llama, small sizes: a smoke test (about 2 min)
    python benchmarks/round_cost.py --sections answering judging --json cost.json
    python benchmarks/round_cost.py --dpo                 # the DPO section alone (--sections dpo)
    python benchmarks/round_cost.py --basics              # also basics.py's tables (batch 1 vs N, memory, FLOP/s)

This process starts torch as the ``sparta`` command does (cpu_threads.prepare_cpu_threads), so the answering and
judging ratios are the batching alone; the round children add the thread settings. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sparta.cpu_threads import prepare_cpu_threads

THREADS = prepare_cpu_threads()  # before torch starts its thread pool

import torch  # noqa: E402

from cpu_sharing import demo_round, outside_steps_share  # noqa: E402
from dpo_cost import bench_dpo, print_dpo  # noqa: E402
from mixed_batches import answering, judging, match_requests, member_pool  # noqa: E402
from sparta.config import JudgeConfig, PoolConfig  # noqa: E402
from sparta.tasks import procedural_instructions  # noqa: E402

SECTIONS = ("answering", "judging", "precision", "round", "shared", "dpo")
TARGET_ANSWERING = 2.0
"""Mixed batches: at least 2x the tokens/s of per-member batching (4 SmolLM2 members, 32 requests each)."""
TARGET_JUDGING = 1.5
TARGET_SCORE_GAP = 1e-4
TARGET_ROUND = 0.5
"""A full demo round in at most half the wall time of the old path."""
TARGET_SHARED = 2.5
"""A demo round beside one other CPU-bound process in at most 2.5x its quiet time."""
TARGET_DPO_OUTSIDE = 0.2

_STARTED = time.perf_counter()


def stage(text: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {text}", file=sys.stderr, flush=True)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def section_answering_judging(args: argparse.Namespace, sections: set[str]) -> dict:
    stage(f"{args.model}: {args.members} members")
    pool = member_pool(args.model, args.members, args.max_new_tokens)
    instructions = procedural_instructions(args.requests, seed=args.seed)
    requests = [(member, instruction) for instruction in instructions for member in pool.members]
    stage(f"answering: {len(requests)} requests x {args.max_new_tokens} tokens, old batch {args.old_batch}")
    answered = answering(pool, requests, args.old_batch, args.batch)
    result = {"answering": {k: v for k, v in answered.items() if k != "responses"}}
    if "judging" in sections:
        judge_requests = match_requests(instructions, answered["responses"])
        for judge_type in ("likelihood", "logprob"):
            stage(f"judging ({judge_type}): {len(judge_requests)} requests")
            batches = (args.old_batch, args.judge_batch)
            result[f"judging_{judge_type}"] = judging(pool, judge_requests, judge_type, *batches, args.reps)
    return result


def section_precision(args: argparse.Namespace) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparta.backends.hf import precision
    from sparta.provisioning import resolve_model

    stage(f"precision probe on {args.model}")
    path = resolve_model(args.model)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    start = time.perf_counter()
    measured, _ = precision.measure(model, AutoTokenizer.from_pretrained(path))
    seconds = time.perf_counter() - start
    dtype, reason = precision.decide(measured)
    machine = precision.machine_name(torch.device("cpu"))
    return {"dtype": dtype, "reason": reason, "machine": machine, "seconds": seconds, **measured.__dict__}


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the lower of the two middle ones for an even count): a real run, not a mean."""
    return sorted(runs, key=lambda run: run["round_seconds"])[(len(runs) - 1) // 2]


def section_rounds(args: argparse.Namespace, sections: set[str]) -> dict:
    model = None if args.model == "smollm2-135m-instruct" else args.model
    out: dict = {"old_runs": [], "new_runs": []}
    for repeat in range(args.round_repeats):  # the two paths alternate, so a slow spell of the machine hits both
        counted = f" ({repeat + 1} of {args.round_repeats})" if args.round_repeats > 1 else ""
        if "round" in sections:
            stage(f"demo round, old path (per-member batches, torch's default threads){counted}")
            out["old_runs"].append(demo_round("old", model, args.round_instructions))
        stage(f"demo round, new path, quiet{counted}")
        out["new_runs"].append(demo_round("new", model, args.round_instructions))
    for path in ("old", "new"):
        if out[f"{path}_runs"]:
            out[path] = median_run(out[f"{path}_runs"])
    if "shared" in sections:
        stage(f"demo round, new path, beside a {args.neighbour} neighbour")
        out["shared"] = demo_round("new", model, args.round_instructions, beside=args.neighbour)
    return out


def table_rows(result: dict) -> list[tuple[str, str, str, str, str, str]]:
    """(metric, old, new, ratio, target, verdict) rows."""
    rows = []
    if "answering" in result:
        a = result["answering"]
        note = f"{a['requests']} x {a['max_new_tokens']} tok" + ("" if a["fixed_length"] else ", NOT fixed length")
        rows.append(
            (
                f"answering tok/s ({note}; batch {a['old']['batch']} -> {a['new']['batch']})",
                f"{a['old']['tokens_per_s']:.1f}",
                f"{a['new']['tokens_per_s']:.1f}",
                f"{a['speedup']:.2f}x",
                f">= {TARGET_ANSWERING:g}x",
                _verdict(a["speedup"] >= TARGET_ANSWERING),
            )
        )
        rate = a["identical_when_recomposed"]
        rows.append(("answers identical when batches recomposed", "", f"{rate:.1%}", "", "reported", ""))
    for judge_type in ("likelihood", "logprob"):
        j = result.get(f"judging_{judge_type}")
        if j is None:
            continue
        ok = j["speedup"] >= TARGET_JUDGING and j["max_score_gap"] <= TARGET_SCORE_GAP
        rows += [
            (
                f"{judge_type} judgments/s ({j['judgments']} in {j['new']['chunks']} round-loop chunks; "
                f"batch {j['old']['batch']} -> {j['new']['batch']})",
                f"{j['old']['judgments_per_s']:.2f}",
                f"{j['new']['judgments_per_s']:.2f}",
                f"{j['speedup']:.2f}x",
                f">= {TARGET_JUDGING:g}x, gap <= {TARGET_SCORE_GAP:g}",
                _verdict(ok),
            ),
            (
                f"  {judge_type}: old path given every request at once",
                f"{j['old_whole']['judgments_per_s']:.2f}",
                f"{j['new']['judgments_per_s']:.2f}",
                f"{j['speedup_vs_whole']:.2f}x",
                "",
                "",
            ),
            (
                f"  {judge_type}: packing, prefixes, headers vs none ({j['spared_token_share']:.0%} tokens spared)",
                f"{j['unshared']['judgments_per_s']:.2f}",
                f"{j['new']['judgments_per_s']:.2f}",
                f"{j['prefix_speedup']:.2f}x",
                "kept if > 1",
                "",
            ),
            (f"  {judge_type}: largest score gap old vs new", "", f"{j['max_score_gap']:.2e}", "", "", ""),
        ]
    if "precision" in result:
        p = result["precision"]
        rows.append((f"pool.dtype auto ({p['machine']})", "", p["dtype"], "", p["reason"], ""))
    rows += _round_rows(result.get("rounds", {}))
    return rows


def _each(rounds: dict) -> str:
    """Every repeat's seconds, old then new, when the rounds ran more than once (the table shows the medians)."""
    old, new = rounds.get("old_runs", []), rounds.get("new_runs", [])
    if max(len(old), len(new)) < 2:
        return ""
    seconds = " / ".join(f"{run['round_seconds']:.0f}" for run in old) + "; " if old else ""
    return f"; medians of {seconds}" + " / ".join(f"{run['round_seconds']:.0f}" for run in new)


def _round_rows(rounds: dict) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    old, new, shared = rounds.get("old"), rounds.get("new"), rounds.get("shared")
    if old and new:
        ratio = new["round_seconds"] / old["round_seconds"]
        rows.append(
            (
                f"demo round wall s ({new['instructions']} instructions, load excluded{_each(rounds)})",
                f"{old['round_seconds']:.1f}",
                f"{new['round_seconds']:.1f}",
                f"{ratio:.2f}x",
                f"<= {TARGET_ROUND:g}x",
                _verdict(ratio <= TARGET_ROUND),
            )
        )
        for stage_name in ("answering", "judging", "training"):
            before, after = old["stage_seconds"].get(stage_name, 0.0), new["stage_seconds"].get(stage_name, 0.0)
            rows.append((f"  {stage_name} s", f"{before:.1f}", f"{after:.1f}", f"{after / before:.2f}x", "", ""))
        pairs = old["training"].get("pairs"), new["training"].get("pairs")
        every = {run["training"].get("pairs") for path in ("old", "new") for run in rounds.get(f"{path}_runs", [])}
        same = _verdict(pairs[0] == pairs[1] and len(every) <= 1)
        rows.append(("  pairs trained (the same work only if equal)", *map(str, pairs), "", "equal", same))
    if new and shared:
        ratio = shared["round_seconds"] / new["round_seconds"]
        rows.append(
            (
                f"demo round beside a '{shared['beside']}' neighbour / quiet",
                f"{new['round_seconds']:.1f}",
                f"{shared['round_seconds']:.1f}",
                f"{ratio:.2f}x",
                f"<= {TARGET_SHARED:g}x",
                _verdict(ratio <= TARGET_SHARED),
            )
        )
    for label, run in (("old", old), ("new", new)):
        share = outside_steps_share(run["training"]) if run else None
        if share is not None:
            rows.append((f"DPO time outside optimizer steps ({label})", "", f"{share:.0%}", "", "<= 20% (item 3)", ""))
    return rows


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"round cost: old path vs new ({result['model']}, {result['threads']})")
    for column in ("metric", "old", "new", "new / old", "target", ""):
        table.add_column(column)
    for row in table_rows(result):
        style = {"PASS": "green", "FAIL": "red"}.get(row[-1], "")
        table.add_row(*map(escape, row[:-1]), f"[{style}]{row[-1]}[/{style}]" if style else "")
    Console(width=160).print(table)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="every member's model")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--requests", type=int, default=32, help="answering: requests per member")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="answering: tokens per answer (forced)")
    parser.add_argument("--old-batch", type=int, default=8, help="per-member batch of the old path")
    parser.add_argument("--batch", type=int, default=PoolConfig().generation_batch_size, help="new answering batch")
    parser.add_argument("--judge-batch", type=int, default=JudgeConfig().batch_size, help="new judging batch")
    parser.add_argument("--round-instructions", type=int, default=None, help="demo round size (default: demo's)")
    parser.add_argument(
        "--round-repeats", type=int, default=1, help="demo rounds: runs of each path, alternating; medians compared"
    )
    parser.add_argument("--neighbour", choices=["busy", "torch"], default="busy", help="the shared-CPU neighbour")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--basics", action="store_true", help="also basics.py's tables for --model and tiny-llama")
    parser.add_argument("--reps", type=int, default=2, help="judging: interleaved repetitions, best kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    parser.add_argument("--quick", action="store_true", help="tiny-llama, 4 requests per member, 8 tokens")
    parser.add_argument("--dpo", action="store_true", help="the DPO section alone (the same as --sections dpo)")
    parser.add_argument("--dpo-pairs", type=int, default=32, help="dpo: preference pairs per member")
    parser.add_argument("--dpo-members", type=int, default=4, help="dpo: members trained (1-4)")
    args = parser.parse_args(argv)
    if args.dpo:
        args.sections = ["dpo"]
    if args.quick:
        args.model, args.requests, args.max_new_tokens = "tiny-llama", 4, 8
        args.round_instructions = args.round_instructions or 4
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    sections = set(args.sections)
    load_before = [round(x, 2) for x in os.getloadavg()]
    result: dict = {"model": args.model, "threads": THREADS.describe(), "load_before": load_before}
    if sections & {"answering", "judging"}:
        result.update(section_answering_judging(args, sections))
    if "precision" in sections:
        result["precision"] = section_precision(args)
    if sections & {"round", "shared"}:
        result["rounds"] = section_rounds(args, sections)
    if "dpo" in sections:
        result["dpo"] = bench_dpo(args.model, args.dpo_pairs, args.seed, stage, args.dpo_members)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average before {load_before}, after {result['load_after']}; {THREADS.describe()}")
    if sections - {"dpo"}:
        print_table(result)
    if "dpo" in result:
        print_dpo(result["dpo"])
    if args.json:
        result["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        result["platform"], result["torch"] = platform.platform(), torch.__version__
        result["settings"] = {k: v for k, v in vars(args).items() if k != "json"}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.basics:
        import basics

        basics.main(["--models", "tiny-llama", args.model] if args.model != "tiny-llama" else ["--quick"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
