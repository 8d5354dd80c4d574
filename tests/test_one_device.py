"""One device per worker, the model's: inputs follow the weights, never the configured string; the Trainer's
arguments take the model's device (never cuda:0 by default, never DataParallel); training precision follows the
pool's dtype."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from sparta.backends.hf.generation import generate  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.backends.hf.trainer_args import base_dtype, one_device, resolved_precision  # noqa: E402
from sparta.backends.hf.training import dpo_config, train_member  # noqa: E402
from sparta.config import LoraConfig, PoolConfig, TrainingConfig  # noqa: E402
from sparta.records import Instruction, PreferencePair  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _own_cache(cache):
    """Every test of this module uses its own model cache."""


def _pool(dtype: str = "float32") -> ModelPool:
    members = [{"name": "alice", "model": "tiny-llama"}, {"name": "bob", "model": "tiny-llama"}]
    config = PoolConfig.model_validate({"members": members, "dtype": dtype})
    return ModelPool(config, LoraConfig(r=4, alpha=8), seed=0)


def _pairs(n: int = 4) -> list[PreferencePair]:
    return [
        PreferencePair(f"What is {i} + 1?", f"It is {i + 1}.", "Cat dog tree.", "bob", "alice", 1.0, f"q{i}")
        for i in range(n)
    ]


def test_inputs_follow_the_model_not_the_configured_device(tmp_path):
    """A device string that names no device of this machine is never used once the model is loaded: generation
    and DPO put every tensor where the weights are (a GPU user's cuda:1 stays cuda:1 across rounds)."""
    pool = _pool()
    pool.config.device = "cuda:7"  # as if the model had been loaded there and the string were read again
    instructions = [Instruction(f"q{i}", f"What is {i} + 2?") for i in range(3)]

    responses = generate(pool, [("alice", i) for i in instructions], seed=0)
    metrics = train_member(pool, "alice", _pairs(), tmp_path / "alice", TrainingConfig(max_length=128), seed=0)

    assert len(responses) == 3 and all(r.meta["new_tokens"] > 0 for r in responses)
    assert metrics["steps"] == 1 and math.isfinite(metrics["loss"])
    assert next(pool.model("alice").parameters()).device.type == "cpu"


def _four_visible_gpus(monkeypatch) -> list[torch.device]:
    """What transformers' device set-up sees on a machine with 4 visible GPUs (torch.cuda's answers replaced: this
    machine has none, so no tensor may go to one); returns the devices made current, in order."""
    current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(torch.device(device)))
    return current


def test_trainer_arguments_take_the_models_gpu_and_count_one(monkeypatch, tmp_path):
    from trl import DPOConfig

    current = _four_visible_gpus(monkeypatch)
    plain = DPOConfig(output_dir=str(tmp_path), report_to="none", bf16=False)
    assert (plain.device, plain.n_gpu) == (torch.device("cuda:0"), 4)  # transformers alone: cuda:0, DataParallel

    current.clear()
    pinned = one_device(DPOConfig)(output_dir=str(tmp_path), report_to="none", bf16=False, model_device="cuda:1")

    assert pinned.device == torch.device("cuda:1") and pinned.n_gpu == 1
    assert current[-1] == torch.device("cuda:1")  # accelerate's "cuda" means the current device: the model's
    assert pinned.per_device_train_batch_size == pinned.train_batch_size  # no batch split over GPUs


def test_trainer_arguments_on_cpu_are_the_models(tmp_path):
    pool = _pool()
    inner = pool.model("alice").get_base_model()
    args = dpo_config(TrainingConfig(), 0, tmp_path, inner)
    assert args.device == torch.device("cpu") and args.n_gpu == 0 and args.model_device == "cpu"
    assert (args.bf16, args.fp16) == (False, False)  # a float32 pool trains in float32 (TRL would turn bf16 on)


def test_precision_follows_the_pools_dtype_unless_set():
    fp32, bf16 = _pool("float32"), _pool("bfloat16")
    fp32_model, bf16_model = fp32.model("alice").get_base_model(), bf16.model("alice").get_base_model()
    assert base_dtype(fp32_model) == torch.float32 and base_dtype(bf16_model) == torch.bfloat16
    assert resolved_precision("auto", fp32_model) == "fp32" and resolved_precision("auto", bf16_model) == "bf16"
    assert resolved_precision("fp32", bf16_model) == "fp32" and resolved_precision("fp16", fp32_model) == "fp16"


def test_a_bfloat16_pool_trains_under_bf16_autocast_with_float32_adapters(tmp_path):
    """Every member, not only the first: accelerate marks a model it prepared and skips its autocast the next time."""
    pool = _pool("bfloat16")
    peft_model = pool.model("alice")
    inner = peft_model.get_base_model()
    base_before = {k: v.clone() for k, v in inner.state_dict().items() if "lora_" not in k}
    args = dpo_config(TrainingConfig(), 0, tmp_path / "args", inner)
    assert (args.bf16, args.fp16) == (True, False)
    seen: list[tuple[torch.dtype, bool]] = []
    hook = inner.model.layers[0].self_attn.q_proj.base_layer.register_forward_hook(
        lambda module, inputs, output: seen.append((output.dtype, torch.is_autocast_enabled("cpu")))
    )
    autocast_by_member = {}
    try:
        for member in ("alice", "bob"):
            seen.clear()
            config = TrainingConfig(learning_rate=1e-3)
            metrics = train_member(pool, member, _pairs(), tmp_path / member, config, seed=0)
            assert metrics["steps"] == 1 and math.isfinite(metrics["loss"])
            autocast_by_member[member] = any(enabled for _, enabled in seen)
    finally:
        hook.remove()

    assert autocast_by_member == {"alice": True, "bob": True}  # the steps ran under bf16 autocast, twice
    assert {p.dtype for n, p in peft_model.named_parameters() if "lora_" in n} == {torch.float32}
    assert all(torch.equal(v, base_before[k]) for k, v in inner.state_dict().items() if "lora_" not in k)
    assert base_dtype(inner) == torch.bfloat16
    assert "forward" not in inner.__dict__ and not hasattr(inner, "_is_accelerate_prepared")
