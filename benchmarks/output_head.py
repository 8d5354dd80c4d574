"""The output head and the answering batch: what `packed_head` and `pool.generation_batch_size` were chosen on.

Three tables, best of ``--reps`` interleaved runs each:

1. the head's product (the model's own weight) for several row counts: PyTorch's default (``F.linear``) against
   oneDNN with the weight packed once (``packed_head``), GFLOP/s;
2. a strided slice of hidden states (what ``logits_to_keep`` hands the head) against the same rows as one matrix;
3. answering with today's path, answers forced to ``--tokens`` tokens, for each batch size in ``--batches`` and each
   request count in ``--answers`` (4 members), with the packed head and without.

    python benchmarks/output_head.py                      # SmolLM2, 48 and 128 answers, batches 32 and 64
    python benchmarks/output_head.py --model tiny-llama --answers 8 --batches 4 8 --tokens 8   # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sparta.cpu_threads import prepare_cpu_threads  # noqa: E402

THREADS = prepare_cpu_threads().describe()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import sparta.backends.hf.forward as forward  # noqa: E402
from mixed_batches import forced_length, member_pool  # noqa: E402
from sparta.backends.hf import packed_head  # noqa: E402
from sparta.backends.hf.generation import generate  # noqa: E402
from sparta.backends.hf.precision import best_seconds  # noqa: E402
from sparta.tasks import procedural_instructions  # noqa: E402

ROWS = (8, 24, 32, 64, 256, 1024)
CPU = torch.device("cpu")


def head_rates(head: torch.nn.Linear, reps: int) -> list[dict]:
    weight = head.weight.detach()
    packed = packed_head._pack(weight)
    out = []
    with torch.inference_mode():
        for rows in ROWS:
            x = torch.randn(rows, weight.shape[1])
            flops = 2 * rows * weight.shape[0] * weight.shape[1]
            plain = best_seconds(lambda x=x: F.linear(x, weight), CPU, repeats=reps)
            dnn = best_seconds(lambda x=x: packed_head._packed_linear(x, packed, None), CPU, repeats=reps)
            out.append({"rows": rows, "plain_gflops": flops / plain / 1e9, "packed_gflops": flops / dnn / 1e9})
    return out


def slices(head: torch.nn.Linear, reps: int) -> list[dict]:
    weight = head.weight.detach()
    out = []
    with torch.inference_mode():
        for rows, length, keep in ((8, 111, 49), (8, 217, 2)):
            strided = torch.randn(rows, length, weight.shape[1])[:, -keep:, :]
            sliced = best_seconds(lambda s=strided: F.linear(s, weight), CPU, repeats=reps)
            whole = best_seconds(lambda s=strided: F.linear(s.reshape(-1, s.shape[-1]), weight), CPU, repeats=reps)
            out.append({"rows": rows, "length": length, "kept": keep, "strided_s": sliced, "one_matrix_s": whole})
    return out


def answering(model: str, answers: Sequence[int], batches: Sequence[int], tokens: int, reps: int) -> list[dict]:
    pool = member_pool(model, 4, tokens)
    modes = {"packed": packed_head.packed_head, "plain": lambda model: contextlib.nullcontext()}
    out = []
    with forced_length(pool, tokens):
        generate(pool, [(pool.members[0], procedural_instructions(1, seed=0)[0])], seed=1, batch_size=1)
        for count in answers:
            instructions = procedural_instructions(count // len(pool.members), seed=0)
            requests = [(member, instruction) for instruction in instructions for member in pool.members]
            seconds: dict[tuple[int, str], float] = {}
            for _ in range(reps):
                for batch in batches:
                    for mode, head in modes.items():
                        forward.packed_head = head
                        start = time.perf_counter()
                        generate(pool, requests, seed=7, batch_size=batch)
                        took = time.perf_counter() - start
                        seconds[batch, mode] = min(seconds.get((batch, mode), float("inf")), took)
            forward.packed_head = modes["packed"]
            for (batch, mode), s in seconds.items():
                row = {"answers": len(requests), "batch": batch, "head": mode, "seconds": s}
                out.append({**row, "tokens_per_s": len(requests) * tokens / s})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--answers", type=int, nargs="+", default=[48, 128], help="answer requests (4 members)")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64], help="answering batch sizes")
    parser.add_argument("--tokens", type=int, default=48, help="tokens per answer (forced)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions, best kept")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from sparta.backends.hf.precision import machine_name

    pool = member_pool(args.model, 1, args.tokens)
    head = pool.bases()[0][1].get_output_embeddings()
    result = {
        "model": args.model,
        "head": list(head.weight.shape),
        "threads": THREADS,
        "machine": machine_name(torch.device("cpu")),
        "head_rates": head_rates(head, args.reps),
        "slices": slices(head, args.reps),
        "answering": answering(args.model, args.answers, args.batches, args.tokens, args.reps),
    }
    print(f"{args.model}, head {tuple(head.weight.shape)}, {THREADS}, {result['machine']}")
    for r in result["head_rates"]:
        rates = f"default {r['plain_gflops']:6.1f} GFLOP/s, packed {r['packed_gflops']:6.1f}"
        print(f"head x {r['rows']:5d} rows: {rates} ({r['packed_gflops'] / r['plain_gflops']:.2f}x)")
    for r in result["slices"]:
        ms = f"strided {r['strided_s'] * 1e3:.1f} ms, one matrix {r['one_matrix_s'] * 1e3:.1f} ms"
        print(f"{r['rows']} rows, last {r['kept']} of {r['length']}: {ms} ({r['strided_s'] / r['one_matrix_s']:.2f}x)")
    for r in result["answering"]:
        what = f"answering {r['answers']:4d} x {args.tokens} tokens, batch {r['batch']:3d}, {r['head']:6s} head"
        print(f"{what}: {r['tokens_per_s']:6.1f} tok/s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
