"""The basic costs of one model on this machine: generation at batch 1 and N, the judges, pool memory, FLOP/s.

A measurement, not a test: it prints a table per model (and ``--json PATH``), marks each target PASS or FAIL,
and always exits 0. See benchmarks/README.md for what every number means and a recorded run. round_cost.py
(issue 11's old-vs-new figures) includes these tables with ``--basics``.

    python benchmarks/basics.py                  # tiny-llama and smollm2-135m-instruct (a few minutes)
    python benchmarks/basics.py --quick          # tiny-llama only, small settings (seconds)
    python benchmarks/basics.py --models smollm2-135m-instruct --batch 8 --json cost.json

FLOPs of one forward pass over a sequence (stated again in the output):
    2 * P_body * T_fed + 2 * P_head * T_logits + 2 * L * d_attn * T * (T + 1)
P_body: every parameter but the input embedding and the output head (the active LoRA adapter included);
P_head: the output head (vocab x hidden, counted even when tied to the embedding); T_fed: tokens fed through the
body; T_logits: positions whose logits are computed; L: layers; d_attn: query heads x head size; T: the
sequence's final length (the last term is QK^T and AV over the causal prefix). Only useful work is counted:
padding and rows that already finished inside a batch are not.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mixed_batches import forced_length
from sparta.backends.base import JUDGES
from sparta.backends.hf.generation import generate
from sparta.backends.hf.pool import ModelPool
from sparta.backends.hf.probes import judge_check
from sparta.config import JudgeConfig, LoraConfig, MemberConfig, PoolConfig, SamplingConfig
from sparta.judge_prompt import judge_instruction
from sparta.provisioning import resolve_model
from sparta.records import Instruction, JudgeRequest, Response
from sparta.tasks import procedural_instructions

DEFAULT_MODELS = ["tiny-llama", "smollm2-135m-instruct"]
JUDGE_TYPES = ["logprob", "generate", "likelihood"]
MEMBER = "bench"
POOL_MEMBERS = 4
FLOP_FORMULA = "2*P_body*T_fed + 2*P_head*T_logits + 2*L*d_attn*T*(T+1)"

TARGET_GEN_SPEEDUP = 3.0
TARGET_JUDGE_SPEEDUP = 10.0
TARGET_POOL_MEMORY = 1.3

_STARTED = time.perf_counter()


def stage(text: str) -> None:
    """Say what is being measured (stderr, so the tables on stdout stay clean)."""
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- peak matmul


def matmul_gflops(size: int, reps: int) -> list[float]:
    """GFLOP/s of ``reps`` fp32 (size x size) @ (size x size) products, after one warm-up product."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.matmul(a, b)
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return rates


# --------------------------------------------------------------------------------------------- the cost model


@dataclass(frozen=True)
class Shape:
    """What the FLOP formula needs to know about one model (with one LoRA adapter active)."""

    p_body: int
    p_head: int
    layers: int
    d_attn: int

    def flops(self, fed: int, logits: int, length: int) -> float:
        """FLOPs of processing one sequence of final length ``length`` (formula in the module docstring)."""
        attention = 2.0 * self.layers * self.d_attn * length * (length + 1)
        return 2.0 * self.p_body * fed + 2.0 * self.p_head * logits + attention


def model_shape(pool: ModelPool, member: str) -> Shape:
    """Parameter counts of the shared base plus ``member``'s adapter; the other members' adapters sit idle."""
    model = pool.model(member)
    head = model.get_output_embeddings().weight
    embed = model.get_input_embeddings().weight
    skip = {head.data_ptr(), embed.data_ptr()}
    body = 0
    for name, param in model.named_parameters():
        if param.data_ptr() in skip or ("lora_" in name and f".{member}." not in name):
            continue
        body += param.numel()
    config = model.get_base_model().config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return Shape(body, head.numel(), config.num_hidden_layers, config.num_attention_heads * head_dim)


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def generation_flops(shape: Shape, responses: Sequence[Response]) -> float:
    """Prefill of the prompt, then one step per new token but the last; logits once per new token."""
    total = 0.0
    for r in responses:
        p, n = r.meta["prompt_tokens"], r.meta["new_tokens"]
        total += shape.flops(p + max(n - 1, 0), n, p + n)
    return total


def _logprob_flops(pool: ModelPool, judge, shape: Shape, requests: Sequence[JudgeRequest], _judged) -> float:
    tokens = judge.tokens(MEMBER)
    extra, keep = (1, 2) if tokens.split_ten else (0, 1)
    total = 0.0
    for r in requests:
        prompt = pool.prompt_text(MEMBER, judge_instruction(r.instruction.text, r.response.text)) + tokens.prefix
        t = len(_ids(pool.tokenizer(MEMBER), prompt)) + extra
        total += shape.flops(t, keep, t)
    return total


def _generate_flops(pool: ModelPool, judge, shape: Shape, requests: Sequence[JudgeRequest], judged) -> float:
    tok, cap = pool.tokenizer(MEMBER), judge.config.max_new_tokens
    total = 0.0
    for r, j in zip(requests, judged):
        p = len(_ids(tok, pool.prompt_text(MEMBER, judge_instruction(r.instruction.text, r.response.text))))
        n = min(len(_ids(tok, j.raw or "")) + 1, cap)  # the reply plus its end-of-turn token
        total += shape.flops(p + n - 1, n, p + n)
    return total


def _likelihood_flops(pool: ModelPool, judge, shape: Shape, requests: Sequence[JudgeRequest], _judged) -> float:
    tok, cap = pool.tokenizer(MEMBER), judge.config.max_response_tokens
    total = 0.0
    for r in requests:
        if not r.response.text.strip():
            continue
        context = len(_ids(tok, pool.prompt_text(MEMBER, r.instruction.text)))
        targets = min(len(_ids(tok, r.response.text)), cap) + 1
        total += shape.flops(context + targets, targets + 1, context + targets)
    return total


JUDGE_FLOPS: dict[str, Callable[..., float]] = {
    "logprob": _logprob_flops,
    "generate": _generate_flops,
    "likelihood": _likelihood_flops,
}


# --------------------------------------------------------------------------------------------- generation


def _pool(model: str, max_new_tokens: int, batch: int) -> ModelPool:
    sampling = SamplingConfig(max_new_tokens=max_new_tokens)  # the pipeline's default temperature and top_p
    config = PoolConfig(
        members=[MemberConfig(name=MEMBER, model=model)], sampling=sampling, generation_batch_size=batch
    )
    return ModelPool(config, LoraConfig(), seed=0)


def _timed_generation(pool: ModelPool, requests, seed: int, batch: int) -> tuple[list[Response], float]:
    start = time.perf_counter()
    responses = generate(pool, requests, seed, batch_size=batch)
    return responses, time.perf_counter() - start


def bench_generation(pool: ModelPool, shape: Shape, instructions: list[Instruction], batch: int, peak: float) -> dict:
    """Tokens/s at batch 1 and at ``batch`` on the same prompts, fixed length, after a warm-up."""
    requests = [(MEMBER, i) for i in instructions]
    max_new = pool.config.sampling.max_new_tokens
    with forced_length(pool, max_new):
        generate(pool, requests[:2], seed=99, batch_size=2)  # warm-up: first-call allocations, padded batches
        runs = {}
        for label, size in (("batch_1", 1), (f"batch_{batch}", batch)):
            responses, seconds = _timed_generation(pool, requests, seed=0, batch=size)
            new = sum(r.meta["new_tokens"] for r in responses)
            flops = generation_flops(shape, responses)
            runs[label] = {
                "batch_size": size,
                "seconds": seconds,
                "new_tokens": new,
                "tokens_per_s": new / seconds,
                "fixed_length": all(r.meta["new_tokens"] == max_new for r in responses),
                "gflops_per_s": flops / seconds / 1e9,
                "fraction_of_peak": flops / seconds / 1e9 / peak,
                "responses": responses,
            }
    one, many = runs["batch_1"], runs[f"batch_{batch}"]
    return {
        "prompts": len(requests),
        "max_new_tokens": max_new,
        "mean_prompt_tokens": statistics.fmean(r.meta["prompt_tokens"] for r in one["responses"]),
        "batch_1": one,
        "batched": many,
        "speedup": many["tokens_per_s"] / one["tokens_per_s"],
    }


# --------------------------------------------------------------------------------------------- judging


def _judge_requests(instructions: list[Instruction], responses: Sequence[Response]) -> list[JudgeRequest]:
    by_id = {i.id: i for i in instructions}
    return [JudgeRequest(MEMBER, by_id[r.instruction_id], r) for r in responses]


def bench_judge(
    pool: ModelPool, shape: Shape, judge_type: str, requests: list[JudgeRequest], batch: int, peak: float
) -> dict:
    """Judgments/s of one judge type on the given requests, after a warm-up on two of them."""
    judge = JUDGES.get(judge_type)(pool, JudgeConfig(type=judge_type, batch_size=batch))
    judge.score(requests[:2])  # warm-up: also finds the judge's turn-end and score tokens once
    start = time.perf_counter()
    judged = judge.score(requests)
    seconds = time.perf_counter() - start
    flops = JUDGE_FLOPS[judge_type](pool, judge, shape, requests, judged)
    return {
        "judgments": len(judged),
        "seconds": seconds,
        "judgments_per_s": len(judged) / seconds,
        "failures": sum(j.score is None for j in judged),
        "gflops_per_s": flops / seconds / 1e9,
        "fraction_of_peak": flops / seconds / 1e9 / peak,
    }


def probe_accuracy(pool: ModelPool, batch: int, per_kind: int) -> dict[str, dict]:
    """judge_check's overall pairwise accuracy (and per kind) for every judge type; 0.5 is a coin."""
    rows = judge_check(pool, JUDGE_TYPES, JudgeConfig(batch_size=batch), n_per_kind=per_kind, seed=0)
    keep = ("overall", "failures", "judgments", "judgments_per_s")
    out = {}
    for row in rows:
        kinds = {k: v for k, v in row.items() if k not in (*keep, "judge_type", "judge", "seconds")}
        out[row["judge_type"]] = {**{k: row[k] for k in keep}, "by_kind": kinds}
    return out


# --------------------------------------------------------------------------------------------- memory (child processes)


def _param_bytes(model: torch.nn.Module) -> tuple[int, int]:
    """(base bytes, LoRA adapter bytes), each tensor counted once even when tied."""
    seen, base, adapters = set(), 0, 0
    for name, param in model.named_parameters():
        if param.data_ptr() in seen:
            continue
        seen.add(param.data_ptr())
        size = param.numel() * param.element_size()
        if "lora_" in name:
            adapters += size
        else:
            base += size
    return base, adapters


def _child_single(model_name: str, instruction: Instruction) -> dict:
    """One plain transformers model: load it, generate a few tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(model_name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True).eval()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": instruction.text}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    base, adapters = _param_bytes(model)
    return {"base_bytes": base, "adapter_bytes": adapters}


def _child_pool(model_name: str, members: int, instruction: Instruction) -> dict:
    """A pool of ``members`` LoRA members on one base: load it, one generation per member."""
    names = [f"m{i}" for i in range(members)]
    config = PoolConfig(
        members=[MemberConfig(name=n, model=model_name) for n in names],
        sampling=SamplingConfig(temperature=0, max_new_tokens=8),
    )
    pool = ModelPool(config, LoraConfig(), seed=0)
    generate(pool, [(n, instruction) for n in names], seed=0, batch_size=1)
    base, adapters = _param_bytes(pool.bases()[0][1])
    return {"base_bytes": base, "adapter_bytes": adapters}


def peak_rss_bytes() -> int:
    """This process's own peak RSS: VmHWM of /proc/self/status where there is one, else ru_maxrss.

    On Linux ru_maxrss is not enough for a child: execve records the peak of the address space it replaces,
    which is the parent's when the child was forked (or vforked) from a large process.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_child(model_name: str, members: int) -> None:
    """Child process body: members -1 imports only, 0 one plain model, n a pool of n members. Prints JSON."""
    instruction = procedural_instructions(1, seed=0)[0]
    if members < 0:
        result = {"base_bytes": 0, "adapter_bytes": 0}
    elif members == 0:
        result = _child_single(model_name, instruction)
    else:
        result = _child_pool(model_name, members, instruction)
    result["max_rss_bytes"] = peak_rss_bytes()
    result["ru_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps(result))


def measure_child(model_name: str, members: int, threads: int) -> dict:
    """Peak RSS of a fresh process (so nothing measured earlier in this one inflates it)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child-model",
        model_name,
        "--child-members",
        str(members),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"memory child {cmd[2:]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(model_name: str, threads: int) -> dict:
    imports = measure_child(model_name, -1, threads)
    single = measure_child(model_name, 0, threads)
    pooled = measure_child(model_name, POOL_MEMBERS, threads)
    return {
        "members": POOL_MEMBERS,
        "imports_rss_bytes": imports["max_rss_bytes"],
        "single_rss_bytes": single["max_rss_bytes"],
        "pool_rss_bytes": pooled["max_rss_bytes"],
        "ratio": pooled["max_rss_bytes"] / single["max_rss_bytes"],
        "ru_maxrss_bytes": {
            "imports": imports["ru_maxrss_bytes"],
            "single": single["ru_maxrss_bytes"],
            "pool": pooled["ru_maxrss_bytes"],
        },
        "single_param_bytes": single["base_bytes"],
        "pool_base_bytes": pooled["base_bytes"],
        "pool_adapter_bytes": pooled["adapter_bytes"],
        "param_ratio": (pooled["base_bytes"] + pooled["adapter_bytes"]) / single["base_bytes"],
    }


# --------------------------------------------------------------------------------------------- one model


def bench_model(model_name: str, args: argparse.Namespace, peak: float) -> dict:
    started = time.perf_counter()
    stage(f"{model_name}: loading")
    pool = _pool(model_name, args.max_new_tokens, args.batch)
    shape = model_shape(pool, MEMBER)
    instructions = procedural_instructions(args.batch, seed=args.seed)
    stage(f"{model_name}: generation, batch 1 then batch {args.batch}")
    gen = bench_generation(pool, shape, instructions, args.batch, peak)
    responses = gen["batch_1"]["responses"] + gen["batched"]["responses"]
    requests = _judge_requests(instructions, responses)
    judges = {}
    for judge_type in JUDGE_TYPES:
        stage(f"{model_name}: {judge_type} judge on {len(requests)} responses")
        judges[judge_type] = bench_judge(pool, shape, judge_type, requests, args.batch, peak)
    stage(f"{model_name}: judge-check, {args.probes} probes per kind")
    accuracy = probe_accuracy(pool, args.batch, args.probes)
    del pool
    stage(f"{model_name}: peak memory in fresh processes (imports only, 1 model, {POOL_MEMBERS}-member pool)")
    memory = bench_memory(model_name, torch.get_num_threads())
    for run in (gen["batch_1"], gen["batched"]):
        run.pop("responses")
    return {
        "model": model_name,
        "shape": asdict(shape),
        "gflop_per_generated_token": (2 * shape.p_body + 2 * shape.p_head) / 1e9,
        "generation": gen,
        "judges": judges,
        "judge_speedup": judges["logprob"]["judgments_per_s"] / judges["generate"]["judgments_per_s"],
        "probe_accuracy": accuracy,
        "memory": memory,
        "seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------------------------- output


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def table_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(metric, value, target, verdict) rows for one model."""
    g, j, m = result["generation"], result["judges"], result["memory"]
    b = g["batched"]["batch_size"]
    fixed = "fixed length" if g["batch_1"]["fixed_length"] and g["batched"]["fixed_length"] else "NOT fixed length"
    rows = [
        (
            "gen tok/s, batch 1",
            f"{g['batch_1']['tokens_per_s']:.1f}",
            f"{g['prompts']} prompts x {g['max_new_tokens']} new, {fixed}",
            "",
        ),
        (f"gen tok/s, batch {b}", f"{g['batched']['tokens_per_s']:.1f}", "", ""),
        (
            f"gen speedup batch {b} / batch 1",
            f"{g['speedup']:.3f}x",
            f">= {TARGET_GEN_SPEEDUP:g}x",
            _verdict(g["speedup"] >= TARGET_GEN_SPEEDUP),
        ),
    ]
    for t in JUDGE_TYPES:
        fails = f", {j[t]['failures']} unparsed" if j[t]["failures"] else ""
        rows.append((f"judgments/s, {t}", f"{j[t]['judgments_per_s']:.2f}", f"{j[t]['judgments']} pairs{fails}", ""))
    rows.append(
        (
            "judge speedup logprob / generate",
            f"{result['judge_speedup']:.3f}x",
            f">= {TARGET_JUDGE_SPEEDUP:g}x",
            _verdict(result["judge_speedup"] >= TARGET_JUDGE_SPEEDUP),
        )
    )
    for t, acc in result["probe_accuracy"].items():
        rows.append(
            (f"probe accuracy, {t}", f"{acc['overall']:.2f}", f"{acc['judgments'] // 2} probes, 0.5 = coin", "")
        )
    rows += [
        ("peak RSS, imports only", _mb(m["imports_rss_bytes"]), "", ""),
        ("peak RSS, 1 model", _mb(m["single_rss_bytes"]), "", ""),
        (f"peak RSS, {m['members']}-member LoRA pool", _mb(m["pool_rss_bytes"]), "", ""),
        (
            "RSS ratio pool / 1 model",
            f"{m['ratio']:.3f}x",
            f"<= {TARGET_POOL_MEMORY:g}x",
            _verdict(m["ratio"] <= TARGET_POOL_MEMORY),
        ),
        (
            "param bytes base + adapters",
            f"{_mb(m['pool_base_bytes'])} + {_mb(m['pool_adapter_bytes'])}",
            f"ratio {m['param_ratio']:.3f}x",
            "",
        ),
        ("GFLOP per generated token", f"{result['gflop_per_generated_token']:.4f}", "2*(P_body+P_head)", ""),
    ]
    for label, run in (("gen, batch 1", g["batch_1"]), (f"gen, batch {b}", g["batched"])):
        rows.append(
            (f"GFLOP/s {label}", f"{run['gflops_per_s']:.2f}", f"{100 * run['fraction_of_peak']:.1f}% of peak", "")
        )
    for t in JUDGE_TYPES:
        rows.append(
            (f"GFLOP/s judge {t}", f"{j[t]['gflops_per_s']:.2f}", f"{100 * j[t]['fraction_of_peak']:.1f}% of peak", "")
        )
    return rows


def print_model(result: dict, peak: float) -> None:
    from rich.console import Console
    from rich.table import Table

    threads = torch.get_num_threads()
    title = f"{result['model']}  ({result['seconds']:.0f} s, {threads} threads; peak fp32 matmul {peak:.1f} GFLOP/s)"
    table = Table(title=title)
    for column in ("metric", "value", "target / note", ""):
        table.add_column(column)
    for metric, value, note, verdict in table_rows(result):
        style = {"PASS": "green", "FAIL": "red"}.get(verdict, "")
        table.add_row(metric, value, note, f"[{style}]{verdict}[/{style}]" if style else "")
    Console().print(table)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=None, help=f"aliases or paths (default: {' '.join(DEFAULT_MODELS)})"
    )
    parser.add_argument("--batch", type=int, default=8, help="the pipeline's generation and judge batch size")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="generated tokens per prompt (forced)")
    parser.add_argument("--probes", type=int, default=3, help="judge-check probes per kind (5 kinds)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's choice); on a loaded machine 1 can be much faster",
    )
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    parser.add_argument("--quick", action="store_true", help="tiny-llama only, 2 probes per kind")
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    parser.add_argument("--child-members", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.models = args.models or ["tiny-llama"]
        args.probes = min(args.probes, 2)
    args.models = args.models or list(DEFAULT_MODELS)
    if args.batch < 2:
        parser.error("--batch must be at least 2 (it is compared with batch 1)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars would interleave with the tables
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_model:
        run_child(args.child_model, args.child_members)
        return 0
    load_before = _load()
    rates = matmul_gflops(args.matmul_size, args.matmul_reps)
    peak = max(rates)
    print(
        f"threads {torch.get_num_threads()}, load {load_before}, fp32 matmul {args.matmul_size}^3: "
        f"best {peak:.1f}, median {statistics.median(rates):.1f} GFLOP/s; FLOPs = {FLOP_FORMULA}",
        flush=True,
    )
    results = []
    for name in args.models:
        result = bench_model(name, args, peak)
        print_model(result, peak)
        results.append(result)
    rates_after = matmul_gflops(args.matmul_size, args.matmul_reps)
    load_after = _load()
    print(
        f"load after {load_after}; fp32 matmul after: best {max(rates_after):.1f}, "
        f"median {statistics.median(rates_after):.1f} GFLOP/s",
        flush=True,
    )
    if args.json:
        report = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
            "matmul": {"size": args.matmul_size, "gflops_before": rates, "gflops_after": rates_after, "peak": peak},
            "flop_formula": FLOP_FORMULA,
            "settings": {k: v for k, v in vars(args).items() if not k.startswith("child") and k != "json"},
            "models": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
