"""pool.dtype auto: the decision follows the measured numbers (real measurements on the tiny model), is cached per
machine and model, reported, and loads the pool in the chosen dtype."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from sparta.backends.hf import precision  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.backends.hf.precision import MIN_SPEEDUP, SCORE_TOLERANCE, Measurements, decide  # noqa: E402
from sparta.config import LoraConfig, PoolConfig  # noqa: E402
from sparta.provisioning import resolve_model  # noqa: E402


def _tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model("tiny-llama")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return path, model, AutoTokenizer.from_pretrained(path)


def test_decide_follows_the_rule():
    slow = Measurements(matmul_fp32=1.0, matmul_bf16=1.0)
    assert decide(slow)[0] == "float32" and "needs 1.2x" in decide(slow)[1]
    fast_matmul = dict(matmul_fp32=2.0, matmul_bf16=1.0)
    slow_forward = Measurements(**fast_matmul, forward_fp32=1.0, forward_bf16=0.9)
    assert decide(slow_forward)[0] == "float32" and "forward pass 1.11x" in decide(slow_forward)[1]
    fast = dict(fast_matmul, forward_fp32=2.0, forward_bf16=1.0)
    assert decide(Measurements(**fast, max_score_change=SCORE_TOLERANCE / 2))[0] == "bfloat16"
    moved = decide(Measurements(**fast, max_score_change=SCORE_TOLERANCE * 2))
    assert moved[0] == "float32" and "moved by up to" in moved[1]
    with pytest.raises(ValueError, match="forward probe"):
        decide(Measurements(**fast_matmul))


def test_real_measurements_on_the_tiny_model_decide_by_the_numbers(cache):
    _, model, tokenizer = _tiny()
    m, model = precision.measure(model, tokenizer)
    assert m.matmul_fp32 > 0 and m.matmul_bf16 > 0
    matmul_fast = m.matmul_bf16 * MIN_SPEEDUP <= m.matmul_fp32
    assert (m.forward_fp32 is not None) == matmul_fast  # the forward probe runs only when the matmul allows bf16
    dtype, reason = decide(m)
    if dtype == "bfloat16":
        assert m.forward_bf16 * MIN_SPEEDUP <= m.forward_fp32 and m.max_score_change <= SCORE_TOLERANCE
    else:
        assert reason  # the rule says which number ruled bf16 out
    # the score probe itself, measured for real in both dtypes: bf16 moves a random tiny model's scores a little
    fp32_scores = precision.judge_scores(model.to(torch.float32), tokenizer)
    bf16_scores = precision.judge_scores(model.to(torch.bfloat16), tokenizer)
    change = max(abs(a - b) for a, b in zip(fp32_scores, bf16_scores))
    assert len(fp32_scores) == 2 * len(precision.PROBES) and all(1.0 <= s <= 10.0 for s in fp32_scores)
    assert 0.0 < change < 1.0
    assert decide(Measurements(2.0, 1.0, 2.0, 1.0, change))[0] == (
        "bfloat16" if change <= SCORE_TOLERANCE else "float32"
    )


def test_the_choice_is_cached_per_machine_and_model_and_loads_the_pool(cache, monkeypatch, tmp_path):
    path, model, tokenizer = _tiny()
    loads = []

    def load():
        loads.append(1)
        return model.to(torch.float32)

    first, loaded = precision.choose_dtype(load, tokenizer, path)
    assert not first.cached and first.key["machine"] and str(path.resolve()) in first.key["model"]
    assert next(loaded.parameters()).dtype == {"float32": torch.float32, "bfloat16": torch.bfloat16}[first.dtype]
    monkeypatch.setattr(precision, "measure", lambda *a: pytest.fail("a cached decision is not measured again"))
    again, _ = precision.choose_dtype(load, tokenizer, path)
    assert again.cached and (again.dtype, again.reason) == (first.dtype, first.reason)
    # a pool with dtype auto uses the cached decision and says so beside the run
    members = [{"name": "a", "model": "tiny-llama"}, {"name": "b", "model": "tiny-llama"}]
    pool = ModelPool(PoolConfig.model_validate({"members": members, "dtype": "auto"}), LoraConfig(r=4), seed=0)
    chosen = pool.dtype_choices["tiny-llama"]
    assert chosen.dtype == first.dtype
    weights = [p for n, p in pool.bases()[0][1].named_parameters() if "lora_" not in n]
    assert {p.dtype for p in weights} == {getattr(torch, first.dtype)}
    from sparta.backends.hf.tribe import HFTribe

    tribe = HFTribe.__new__(HFTribe)
    tribe.pool = pool
    tribe.bind_run(tmp_path)
    saved = json.loads((tmp_path / "precision.json").read_text())
    assert saved["tiny-llama"]["dtype"] == first.dtype and saved["tiny-llama"]["reason"] == first.reason


def test_a_rebuilt_model_is_measured_again(cache, tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    before = precision.model_fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"xy")
    assert precision.model_fingerprint(tmp_path) != before
