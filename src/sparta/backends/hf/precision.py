"""``pool.dtype: auto``: bfloat16 only where this device computes it fast AND the judges' scores stay put; measured.

Whether bf16 pays depends on the machine: a GPU or a CPU with native bf16 (avx512_bf16, AMX) runs it faster than
fp32, an AVX2-only CPU 10-100x slower (DESIGN section 4). So the pool measures, once per machine and model, and
caches the decision in the model cache (``precision/*.json``):

1. a matmul shaped like the model's MLP (``PROBE_TOKENS`` x hidden @ hidden x intermediate) in fp32 and bf16, best
   of ``REPEATS``: if bf16 is not at least ``MIN_SPEEDUP`` times faster, fp32, and nothing slower is run;
2. the model's own forward pass over ``FORWARD_ROWS`` x ``PROBE_TOKENS`` tokens in fp32 and bf16: the same test;
3. the judges' scores on ``PROBES``, fixed (instruction, answer) pairs read as the likelihood and logprob judges read
   them (``sparta.backends.judging``, the member's chat template): bf16 is chosen only if no score moves by more
   than ``SCORE_TOLERANCE`` (on the 1-10 scale) from fp32's.

A bf16 run whose warm-up alone takes ``GIVE_UP`` times fp32's best is not repeated, so an AVX2 CPU spends about
half a second on the whole probe. The model is loaded in fp32, measured, and converted in place when bf16 wins.
The decision, its reason and the numbers behind it are said on stderr and written into the run directory
(``ModelPool.dtype_choices``, ``precision.json``). The vLLM engine hands ``auto`` to its server unchanged.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sparta.config import JudgeConfig, MemberConfig
from sparta.provisioning import cache_dir
from sparta.rundir import atomic_write_text

MIN_SPEEDUP = 1.2
"""bf16 must be at least this many times faster than fp32 (matmul probe and forward probe) to be considered."""
SCORE_TOLERANCE = 0.25
"""Largest change of a judge score (1-10 scale) that bf16 may cause on the probes: a quarter of one score step."""
PROBE_TOKENS = 128
"""Rows of the matmul probe and tokens per row of the forward probe: enough work to keep a GPU busy."""
FORWARD_ROWS = 4
REPEATS = 3
GIVE_UP = 5.0
"""A bf16 probe whose first run takes this many times fp32's best is not repeated: the answer is already fp32."""
RECIPE = "precision/1"
PROBES = (
    ("What is 12 + 30?", "12 + 30 = 42."),
    ("Name the capital of France.", "The capital of France is Paris."),
    ("Give one word that rhymes with cat.", "Hat."),
    ("What is 7 times 8?", "7 times 8 is 54."),
    ("Write a short greeting.", "the the the the the the the the"),
    ("Is water wet? Answer yes or no.", "Bananas are yellow and grow in bunches."),
)


@dataclass(frozen=True)
class Measurements:
    """Seconds per fp32 and bf16 run of each probe that ran (None: not reached), and the largest score change."""

    matmul_fp32: float
    matmul_bf16: float
    forward_fp32: float | None = None
    forward_bf16: float | None = None
    max_score_change: float | None = None


@dataclass(frozen=True)
class DtypeChoice:
    """What ``auto`` chose, why, from which numbers; ``cached``: read from the model cache, not measured now."""

    dtype: str
    reason: str
    measurements: Measurements
    cached: bool = False
    key: dict[str, str] = field(default_factory=dict)


def _fast_enough(fp32: float, bf16: float) -> bool:
    return bf16 * MIN_SPEEDUP <= fp32


def decide(m: Measurements) -> tuple[str, str]:
    """(dtype, why) from the numbers measured so far: the rule above, nothing else."""
    if not _fast_enough(m.matmul_fp32, m.matmul_bf16):
        return "float32", f"bf16 matmul {m.matmul_fp32 / m.matmul_bf16:.2f}x the speed of fp32 (needs {MIN_SPEEDUP}x)"
    if m.forward_fp32 is None or m.forward_bf16 is None:
        raise ValueError("bf16 matmuls are fast: the forward probe must be measured before deciding")
    if not _fast_enough(m.forward_fp32, m.forward_bf16):
        speed = m.forward_fp32 / m.forward_bf16
        return "float32", f"bf16 forward pass {speed:.2f}x the speed of fp32 (needs {MIN_SPEEDUP}x)"
    if m.max_score_change is None:
        raise ValueError("bf16 is fast: the judge-score probe must be measured before deciding")
    speed = m.forward_fp32 / m.forward_bf16
    if m.max_score_change > SCORE_TOLERANCE:
        return "float32", (
            f"bf16 forward pass {speed:.2f}x faster, but judge scores moved by up to {m.max_score_change:.3f} "
            f"(tolerance {SCORE_TOLERANCE})"
        )
    return "bfloat16", f"bf16 forward pass {speed:.2f}x faster, judge scores within {m.max_score_change:.3f}"


# --------------------------------------------------------------------------------------------- measuring


def best_seconds(
    run: Callable[[], Any], device: torch.device, give_up: float = float("inf"), repeats: int = REPEATS
) -> float:
    """Best of ``repeats`` timed runs after a warm-up; just the warm-up's time when that alone exceeds ``give_up``
    (it includes one-off costs, so it can only overstate: enough to tell a many-times slower dtype)."""

    def timed() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    first = timed()
    if first > give_up:
        return first
    return min(timed() for _ in range(repeats))


def _matmul_seconds(model: torch.nn.Module, dtype: torch.dtype, device: torch.device, give_up: float) -> float:
    config = model.config
    hidden = config.hidden_size
    intermediate = getattr(config, "intermediate_size", None) or 4 * hidden
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(PROBE_TOKENS, hidden, generator=generator).to(device, dtype)
    b = torch.randn(hidden, intermediate, generator=generator).to(device, dtype)
    return best_seconds(lambda: a @ b, device, give_up)


def _requests() -> list[Any]:
    from sparta.records import Instruction, JudgeRequest, Response

    return [
        JudgeRequest("probe", Instruction(f"p{k}", instruction), Response(f"p{k}", "m", answer))
        for k, (instruction, answer) in enumerate(PROBES)
    ]


def _next_token_probs(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.softmax(model(input_ids=torch.tensor([ids], device=device)).logits[0, -1].float(), dim=-1).cpu()


def judge_scores(model: torch.nn.Module, tokenizer: Any) -> list[float]:
    """The likelihood and the logprob judge's score of every probe, read from plain forward passes."""
    from sparta.backends.judging import (
        JudgeEncoder,
        likelihood_inputs,
        likelihood_judgment,
        logprob_inputs,
        logprob_judgment,
        member_score_tokens,
        reading_from_probabilities,
    )

    encoder = JudgeEncoder(MemberConfig(name="probe", model="probe"), tokenizer, JudgeConfig())
    tokens = member_score_tokens(encoder)
    device = next(model.parameters()).device
    scores = []
    with torch.inference_mode():
        for request in _requests():
            likely = likelihood_inputs(encoder, request)
            ids = likely.context_ids + likely.target_ids
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0].float()
            steps = torch.log_softmax(logits[len(likely.context_ids) - 1 : -1], dim=-1)
            targets = torch.tensor(likely.target_ids, device=device).unsqueeze(-1)
            logprobs = steps.gather(-1, targets).squeeze(-1).tolist()
            scores.append(likelihood_judgment(request, likely, logprobs, encoder.config).score)
            inputs = logprob_inputs(encoder, tokens, request)
            first = _next_token_probs(model, inputs.prompt_ids)
            after = _next_token_probs(model, inputs.after_one_ids) if inputs.after_one_ids else None
            reading = reading_from_probabilities(
                tokens,
                {t: float(first[t]) for t in tokens.first.values()},
                {t: float(after[t]) for t in tokens.digit_ids} if after is not None else None,
            )
            scores.append(logprob_judgment(request, reading).score)
    return scores


def _forward_seconds(model: torch.nn.Module, give_up: float) -> float:
    device = next(model.parameters()).device
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (FORWARD_ROWS, PROBE_TOKENS), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device)
    with torch.inference_mode():
        return best_seconds(lambda: model(input_ids=ids, logits_to_keep=1), device, give_up)


def measure(model: torch.nn.Module, tokenizer: Any) -> tuple[Measurements, torch.nn.Module]:
    """Run the probes in order, stopping as soon as fp32 is decided; the model comes back in bf16 once the
    forward probe has run (the caller reloads it when fp32 wins after that)."""
    device = next(model.parameters()).device
    matmul_fp32 = _matmul_seconds(model, torch.float32, device, float("inf"))
    matmul_bf16 = _matmul_seconds(model, torch.bfloat16, device, GIVE_UP * matmul_fp32)
    m = Measurements(matmul_fp32, matmul_bf16)
    if not _fast_enough(matmul_fp32, matmul_bf16):
        return m, model
    forward_fp32 = _forward_seconds(model, float("inf"))
    fp32_scores = judge_scores(model, tokenizer)
    model.to(torch.bfloat16)
    forward_bf16 = _forward_seconds(model, GIVE_UP * forward_fp32)
    m = Measurements(matmul_fp32, matmul_bf16, forward_fp32, forward_bf16)
    if not _fast_enough(forward_fp32, forward_bf16):
        return m, model
    change = max(abs(a - b) for a, b in zip(fp32_scores, judge_scores(model, tokenizer)))
    return Measurements(matmul_fp32, matmul_bf16, forward_fp32, forward_bf16, change), model


# --------------------------------------------------------------------------------------------- the cache
# Decisions measured once per machine and model live in the model cache, one JSON file per key; the output head's
# GEMM library (``packed_head``) is kept there too.


def machine_name(device: torch.device) -> str:
    """The processor (or GPU) that computes, as precisely as the system says."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
    except OSError:
        fields = {}
    fields = {name.strip(): value.strip() for name, value in fields.items()}
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    bf16 = sorted({f for f in fields.get("flags", "").split() if "bf16" in f or f.startswith("amx")})
    return f"{fields['model name']} [{' '.join(bf16) or 'no bf16 flags'}]"


def model_fingerprint(path: Path) -> str:
    """The model directory and its weight files' sizes and times: a rebuilt or replaced model is measured again."""
    files = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
    return f"{Path(path).resolve() if Path(path).is_dir() else path}|" + ";".join(
        f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in files
    )


def cache_key(path: Path, device: torch.device) -> dict[str, str]:
    return {
        "recipe": RECIPE,
        "machine": machine_name(device),
        "device": device.type,
        "torch": torch.__version__,
        "model": model_fingerprint(path),
    }


def _decision_file(kind: str, key: dict[str, str]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / kind / f"{digest}.json"


def read_decision(kind: str, key: dict[str, str]) -> dict[str, Any] | None:
    """A decision measured earlier on this machine (``kind``: ``precision``, ``packed-head``...) under exactly
    ``key``; None when there is none or it cannot be read (it is then measured again)."""
    try:
        saved = json.loads(_decision_file(kind, key).read_text())
        return saved if isinstance(saved, dict) and saved.get("key") == key else None
    except (OSError, ValueError):
        return None


def write_decision(kind: str, key: dict[str, str], record: dict[str, Any]) -> None:
    """Keep a measured decision in the model cache, whole or not at all."""
    target = _decision_file(kind, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps({"key": key, **record}, indent=2) + "\n")


def _read_cached(key: dict[str, str]) -> DtypeChoice | None:
    saved = read_decision("precision", key)
    try:
        return (
            None
            if saved is None
            else DtypeChoice(saved["dtype"], saved["reason"], Measurements(**saved["measurements"]), True, key)
        )
    except (KeyError, TypeError):
        return None


def _write_cached(choice: DtypeChoice) -> None:
    record = {"dtype": choice.dtype, "reason": choice.reason, "measurements": asdict(choice.measurements)}
    write_decision("precision", choice.key, record)


def choose_dtype(load_fp32: Callable[[], torch.nn.Module], tokenizer: Any, path: Path):
    """(the dtype chosen for this machine and model, the model in it): cached, else measured on the fp32 model
    ``load_fp32()`` returns (loaded again when the probe rounded it to bf16 and fp32 won)."""
    model = load_fp32()
    key = cache_key(path, next(model.parameters()).device)
    cached = _read_cached(key)
    if cached is not None:
        return cached, model.to(torch.bfloat16) if cached.dtype == "bfloat16" else model
    measurements, model = measure(model, tokenizer)
    dtype, reason = decide(measurements)
    choice = DtypeChoice(dtype, reason, measurements, False, key)
    _write_cached(choice)
    if dtype == "float32" and next(model.parameters()).dtype != torch.float32:
        del model
        model = load_fp32()
    return choice, model
