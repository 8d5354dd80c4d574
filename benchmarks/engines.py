"""HF vs vLLM engine, in one run: answering tok/s, judgments/s (likelihood, logprob), server start time and memory.

    .venv/bin/python benchmarks/engines.py                               # SmolLM2, 4 members, fp32 and bf16
    .venv/bin/python benchmarks/engines.py --model tiny-llama --requests 4 --max-new-tokens 8 --dtypes float32

A measurement, not a test: it always exits 0. For each dtype it builds one pool of ``--members`` members on one
base, gives every member a random LoRA adapter of its own (so the server really mixes adapters), starts a vLLM
server for it (``.venv-vllm``, see ``make vllm``) and runs the same work on both engines:

1. answering: ``--requests`` instructions per member, greedy, ``--max-new-tokens``; tok/s = generated tokens
   (``new_tokens``) / wall time. Greedy, so both engines do the same work where they agree (the rate is printed);
2. judging: every answer of the first two members judged by every other member, once with the likelihood judge
   and once with the logprob judge; judgments/s and the largest score difference between the engines.

A warm-up request runs on each engine first. The HF engine batches by ``--batch`` and ``--judge-batch``
(pool.generation_batch_size and judge.batch_size, sparta's defaults unless given); the vLLM engine sends everything
at once and lets the server batch. Server start = from spawning the process to /health answering; server RSS =
every process of its group after the work; HF RSS = this process's VmHWM (the HF pool and the tokenizers the vLLM
engine also needs). Progress goes to stderr, the table to stdout, every number to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from sparta.backends.vllm.server import default_python
from sparta.backends.vllm.tribe import VllmTribe, build
from sparta.config import JudgeConfig, MemberConfig, PoolConfig, SamplingConfig, SpartaConfig, config_from_dict
from sparta.records import JudgeRequest, Response
from sparta.rundir import adapter_dir, round_dir
from sparta.tasks import load_task

GIB = 2**30


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_bf16() -> str:
    """Whether this CPU computes bf16 natively (avx512_bf16 or AMX); without, bf16 matmuls are emulated."""
    try:
        flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return "unknown"
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    return f"native ({', '.join(native)})" if native else "none (no avx512_bf16/amx_bf16: emulated, slow)"


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def make_config(args: argparse.Namespace, dtype: str) -> SpartaConfig:
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens)
    members = [MemberConfig(name=f"m{i}", model=args.model, sampling=greedy) for i in range(args.members)]
    data = {
        "pool": {
            "members": [m.model_dump() for m in members],
            "dtype": dtype,
            "engine": "vllm",
            "generation_batch_size": args.batch or PoolConfig().generation_batch_size,
        },
        "judge": {"batch_size": args.judge_batch or JudgeConfig().batch_size},
        "vllm": {"python": args.vllm_python, "kv_cache_gb": args.kv_cache_gb},
    }
    return config_from_dict(data, "benchmarks/engines.py")


def distinct_adapters(tribe: VllmTribe, run: Path) -> Path:
    """Every member gets a random LoRA update of its own, saved as round 1's adapters."""
    path = round_dir(run, 1)
    for index, member in enumerate(tribe.members):
        torch.manual_seed(index)
        with torch.no_grad():
            for name, weight in tribe.pool.model(member).named_parameters():
                if f".{member}." in name and "lora_B" in name:
                    weight.normal_(0.0, 0.02)
        tribe.pool.save_adapter(member, adapter_dir(path, member))
    return path


def timed(work: Callable[[], list]) -> tuple[list, float]:
    began = time.perf_counter()
    out = work()
    return out, time.perf_counter() - began


def set_judge(tribe: VllmTribe, judge_type: str) -> None:
    tribe.config.judge.type = tribe.learner.config.judge.type = judge_type
    tribe._judge = tribe.learner._judge = None


def bench_judges(tribe: VllmTribe, requests: Sequence[JudgeRequest], row: dict) -> None:
    for judge_type in ("likelihood", "logprob"):
        set_judge(tribe, judge_type)
        tribe.judge(requests[:1]), tribe.learner.judge(requests[:1])  # warm-up
        served, served_s = timed(lambda: tribe.judge(requests))
        local, local_s = timed(lambda: tribe.learner.judge(requests))
        row[f"{judge_type}_per_s"] = {"hf": len(local) / local_s, "vllm": len(served) / served_s}
        row[f"{judge_type}_max_diff"] = max(abs(a.score - b.score) for a, b in zip(served, local))
        say(f"  {judge_type}: hf {len(local) / local_s:.2f}/s, vllm {len(served) / served_s:.2f}/s")


def bench_dtype(args: argparse.Namespace, dtype: str, workdir: Path) -> dict:
    say(f"{args.model}, {dtype}: building the pool and starting a vLLM server")
    tribe = build(make_config(args, dtype))
    tribe.bind_run(workdir / dtype)
    tribe.load_round(distinct_adapters(tribe, workdir / dtype))
    instructions = load_task("procedural", {"size": max(40, args.requests), "seed": 0})[: args.requests]
    requests = [(member, x) for member in tribe.members for x in instructions]
    try:
        tribe.generate(requests[:1], seed=0)  # starts the server, loads the adapters, warms up
        tribe.learner.generate(requests[:1], seed=0)
        row: dict = {"dtype": dtype, "server_start_s": tribe.server.started_in}
        served, served_s = timed(lambda: tribe.generate(requests, seed=1))
        local, local_s = timed(lambda: tribe.learner.generate(requests, seed=1))
        tokens = {"hf": sum(r.meta["new_tokens"] for r in local), "vllm": sum(r.meta["new_tokens"] for r in served)}
        row["answer_tok_per_s"] = {"hf": tokens["hf"] / local_s, "vllm": tokens["vllm"] / served_s}
        row["greedy_identical"] = sum(a.text == b.text for a, b in zip(served, local)) / len(requests)
        say(f"  answering: hf {row['answer_tok_per_s']['hf']:.1f} tok/s, vllm {row['answer_tok_per_s']['vllm']:.1f}")
        by_id = {x.id: x for x in instructions}
        judged = [r for r in local if r.model in tribe.members[:2]]
        bench_judges(tribe, judge_requests(tribe.members, judged, by_id), row)
        row["server_rss_gib"] = tribe.server.group_rss_bytes() / GIB
    finally:
        tribe.close()
    return row


def judge_requests(members: list[str], responses: Sequence[Response], by_id: dict) -> list[JudgeRequest]:
    return [JudgeRequest(judge, by_id[r.instruction_id], r) for r in responses for judge in members if judge != r.model]


def table(rows: list[dict]) -> str:
    head = (
        "dtype     engine  answer tok/s  likelihood j/s  logprob j/s  | greedy same  max score diff (lik, lp)  "
        "server start  server RSS"
    )
    lines = [head]
    for row in rows:
        for engine in ("hf", "vllm"):
            extra = ""
            if engine == "vllm":
                extra = (
                    f"  | {row['greedy_identical']:11.1%}  {row['likelihood_max_diff']:.1e}, "
                    f"{row['logprob_max_diff']:.1e}        {row['server_start_s']:8.1f} s  "
                    f"{row['server_rss_gib']:6.2f} GiB"
                )
            lines.append(
                f"{row['dtype']:9} {engine:6} {row['answer_tok_per_s'][engine]:12.1f}  "
                f"{row['likelihood_per_s'][engine]:14.2f}  {row['logprob_per_s'][engine]:11.2f}{extra}"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="alias, local path or hub id")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--requests", type=int, default=32, help="instructions answered by each member")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=None, help="the HF engine's answering batch (default: sparta's)")
    parser.add_argument("--judge-batch", type=int, default=None, help="the HF engine's judge batch (default: sparta's)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--vllm-python", default=default_python(), help="interpreter of an environment with vLLM")
    parser.add_argument("--kv-cache-gb", type=float, default=2.0, help="VLLM_CPU_KVCACHE_SPACE of the server")
    parser.add_argument("--json", type=Path, help="also write every number here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    header = (
        f"{args.model}: {args.members} members x {args.requests} requests, {args.max_new_tokens} new tokens, "
        f"torch threads {torch.get_num_threads()}, CPU bf16: {cpu_bf16()}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="sparta-engines-") as tmp:
        for dtype in args.dtypes:
            rows.append(bench_dtype(args, dtype, Path(tmp)))
    result = {"header": header, "rows": rows, "hf_peak_rss_gib": peak_rss() / GIB}
    print(header)
    print(table(rows))
    print(f"HF process peak RSS (the pool, also needed by the vLLM engine for training): {peak_rss() / GIB:.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
