"""The GPU path, end to end: one SPARTA round of 4 bfloat16 members on one GPU, local placement; prints its speed.

    bash benchmarks/gpu_check.sh                 # one H200: fits 8 minutes (model build, one round, report)
    bash benchmarks/gpu_check.sh --tiny          # a dry run of the same code on this CPU, with a 2-layer model

The base is a Llama of about 1B parameters (hidden 2048, 16 layers, 32 query / 8 KV heads, MLP 8192), randomly
initialised in this process and saved as safetensors: no model hub. Its tokenizer is tiny-llama's byte-level BPE
(512 tokens, built in-process), so the output head is small and nearly all parameters are in the body. The round
is the project's own loop (``RoundLoop``, engine hf, placement local) on the procedural task: 64 instructions,
answers of up to 128 sampled tokens (a random model rarely stops, so cut answers are kept as pairs), the likelihood
judge (the 2 non-fighting members judge each answer), and DPO of every member (LoRA r 16 on the attention
projections, batch 8, one epoch, precision auto = bf16 autocast).

Printed, per stage: wall seconds; answering tokens/s (generated tokens) and judgments/s; DPO optimizer steps/s
(time inside the steps) and the share of the training stage outside them; peak GPU memory (allocated and reserved);
and each stage's achieved TFLOP/s as a share of the bf16 peak (``--peak-tflops``, default 989: an H200 SXM's dense
bf16 rate per NVIDIA's datasheet).
FLOPs are counted as 2 x parameters (all but the input embedding) per token fed forward: answering, every prompt
and generated token; judging, the judged answer's prompt and tokens; DPO steps, 3 x that over both answers of
every pair (forward, then backward through activations and the small LoRA weights); attention is not counted, so
the shares are lower bounds. ``--json PATH`` writes every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from sparta.backends.base import build_tribe
from sparta.config import config_from_dict
from sparta.pipeline.loop import RoundLoop
from sparta.pipeline.state import RunState
from sparta.provisioning.tiny import build_tiny_tokenizer
from sparta.rundir import JUDGMENTS, PAIRS, RESPONSES, TRAINING, read_json, read_jsonl, round_dir

SIZES = {
    "1b": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8
    ),
    "tiny": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2
    ),
}
"""Llama shapes: ~1B parameters (the GPU check), and tiny-llama's (the CPU dry run)."""
MEMBERS = 4


class StageClock:
    """A round-loop observer that notes the wall time of every finished stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def opened(self, state: RunState) -> None:
        self._last = time.perf_counter()

    def stage_finished(self, state: RunState, round_index: int, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage], self._last = now - self._last, now

    def close(self) -> None:
        return None


def build_base(directory: Path, size: str, device: str) -> int:
    """Save a randomly initialised bf16 Llama of ``size`` with tiny-llama's tokenizer; returns its parameter count."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SIZES[size],
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    count = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    del model
    return count


def round_config(model_dir: Path, device: str, instructions: int, max_new_tokens: int) -> dict:
    members = [{"name": f"m{index}", "model": str(model_dir)} for index in range(MEMBERS)]
    return {
        "run": {"name": "gpu-check", "seed": 0, "rounds": 1, "instructions_per_round": instructions},
        "data": {"task": "procedural", "options": {"size": max(400, 2 * instructions), "seed": 0}},
        "pool": {
            "members": members,
            "dtype": "bfloat16",
            "device": device,
            "max_prompt_tokens": 256,
            "generation_batch_size": 64,
            "sampling": {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": max_new_tokens},
        },
        "tournament": {"truncated": "keep"},
        "judge": {"type": "likelihood", "batch_size": 64, "max_response_tokens": max_new_tokens},
        "training": {"learning_rate": 1e-5, "batch_size": 8, "epochs": 1, "lora": {"r": 16, "alpha": 32}},
    }


def _share(flops: float, seconds: float, peak_tflops: float) -> dict:
    achieved = flops / seconds / 1e12
    return {"tflop": flops / 1e12, "tflops_per_s": achieved, "share_of_peak": achieved / peak_tflops}


def measure(run: Path, clock: StageClock, params: int, tokenizer, peak_tflops: float) -> dict:
    """Every printed number, from the run directory and the stage clock."""
    path = round_dir(run, 1)
    responses, judgments = read_jsonl(path / RESPONSES), read_jsonl(path / JUDGMENTS)
    pairs, training = read_jsonl(path / PAIRS), read_json(path / TRAINING)
    fed = {(r["instruction_id"], r["model"]): r["meta"]["prompt_tokens"] + r["meta"]["new_tokens"] for r in responses}
    new_tokens = sum(r["meta"]["new_tokens"] for r in responses)
    judged_tokens = sum(fed[(j["instruction_id"], j["model"])] for j in judgments)

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    pair_tokens = sum(2 * tokens(p["prompt"]) + tokens(p["chosen"]) + tokens(p["rejected"]) for p in pairs)
    members = training["members"].values()
    steps = sum(m.get("steps", 0) for m in members)
    in_steps = sum(m.get("seconds_in_steps", 0.0) for m in members)
    member_seconds = sum(m.get("seconds", 0.0) for m in members)
    return {
        "stage_seconds": clock.seconds,
        "answers": len(responses),
        "tokens_per_s": new_tokens / clock.seconds["responses"],
        "judgments": len(judgments),
        "judgments_per_s": len(judgments) / clock.seconds["judgments"],
        "pairs": len(pairs),
        "dpo_steps": steps,
        "dpo_steps_per_s": steps / in_steps if in_steps else 0.0,
        "dpo_outside_steps_share": 1 - in_steps / member_seconds if member_seconds else 0.0,
        "dpo_reference_seconds": sum(m.get("seconds_reference", 0.0) for m in members),
        "flops": {
            "answering": _share(2 * params * sum(fed.values()), clock.seconds["responses"], peak_tflops),
            "judging": _share(2 * params * judged_tokens, clock.seconds["judgments"], peak_tflops),
            "dpo_steps": _share(3 * 2 * params * pair_tokens * MEMBERS, in_steps or 1.0, peak_tflops),
        },
    }


def report_lines(r: dict) -> list[str]:
    memory = r["peak_memory_gib"]
    lines = [
        f"device {r['device']} ({r['device_name']}), torch {r['torch']}, base {r['params']:,} parameters (bf16), "
        f"{MEMBERS} members, {r['instructions']} instructions; base built in {r['build_s']:.1f} s",
        "stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stage_seconds"].items()),
        f"answering: {r['answers']} answers, {r['tokens_per_s']:,.0f} generated tok/s",
        f"judging: {r['judgments']} judgments, {r['judgments_per_s']:,.1f} judgments/s",
        f"DPO: {r['pairs']} pairs, {r['dpo_steps']} optimizer steps, {r['dpo_steps_per_s']:.2f} steps/s inside the "
        f"steps; {100 * r['dpo_outside_steps_share']:.1f}% of training time outside them (reference pass "
        f"{r['dpo_reference_seconds']:.1f} s)",
        f"peak GPU memory: {memory['allocated']:.1f} GiB allocated, {memory['reserved']:.1f} GiB reserved",
    ]
    for stage, share in r["flops"].items():
        lines.append(
            f"{stage}: {share['tflops_per_s']:.2f} TFLOP/s = {100 * share['share_of_peak']:.2f}% of the "
            f"{r['peak_tflops']:g} TFLOP/s bf16 peak (2 x params x tokens; attention not counted)"
        )
    lines.append(f"members' weights after the round on: {', '.join(r['weights_device'])}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model on the CPU: a dry run of the script")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if there is one, else cpu)")
    parser.add_argument("--instructions", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the device's dense bf16 rate, TFLOP/s")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sparta-gpu-check"), help="model and run directory")
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    os.environ.setdefault("SPARTA_CACHE", str(args.out / "cache"))
    model_dir, run = args.out / "base", args.out / f"run-{int(time.time())}"
    started = time.perf_counter()
    params = build_base(model_dir, "tiny" if args.tiny else "1b", device)
    build_s = time.perf_counter() - started
    config = config_from_dict(round_config(model_dir, device, args.instructions, args.max_new_tokens))
    clock = StageClock()
    tribe = build_tribe(config)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    RoundLoop(config, run, tribe, observer=clock).run()
    cuda = device.startswith("cuda")
    result = {
        "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "params": params,
        "instructions": args.instructions,
        "build_s": build_s,
        "peak_tflops": args.peak_tflops,
        "weights_device": sorted({str(p.device) for _, model, _ in tribe.pool.bases() for p in model.parameters()}),
        "peak_memory_gib": {
            "allocated": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0,
            "reserved": torch.cuda.max_memory_reserved() / 2**30 if cuda else 0.0,
        },
        **measure(run, clock, params, tribe.pool.tokenizer("m0"), args.peak_tflops),
    }
    print("\n".join(report_lines(result)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
