"""The pool: one base copy per base model, independent LoRA adapters per member, PEFT safetensors on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sparta.backends.hf.pool import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ModelPool  # noqa: E402
from sparta.config import LoraConfig, PoolConfig, SamplingConfig  # noqa: E402


def _pool_config() -> PoolConfig:
    return PoolConfig.model_validate(
        {
            "members": [
                {"name": "alice", "model": "tiny-llama", "system_prompt": "You are terse."},
                {"name": "bob", "model": "tiny-llama", "sampling": {"temperature": 0.0, "max_new_tokens": 5}},
                {"name": "carol", "model": "tiny-llama-1"},
            ],
            "sampling": {"temperature": 0.9, "max_new_tokens": 7},
        }
    )


@pytest.fixture(scope="module", autouse=True)
def _own_cache(cache):
    """Every test of this module uses its own model cache."""


@pytest.fixture(scope="module")
def pool(cache) -> ModelPool:
    return ModelPool(_pool_config(), LoraConfig(r=4, alpha=8), seed=0)


def _lora_b(pool: ModelPool, member: str) -> torch.Tensor:
    model = pool.model(member)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    return layer.lora_B[member].weight


def _base_weight(pool: ModelPool, member: str) -> torch.Tensor:
    return pool.model(member).base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight


def _logits(pool: ModelPool, member: str) -> torch.Tensor:
    tokenizer = pool.tokenizer(member)
    ids = tokenizer(pool.prompt_text(member, "What is 2 + 2?"), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return pool.model(member)(**ids).logits


def test_members_on_one_base_share_one_copy(pool):
    bases = {name: members for name, _, members in pool.bases()}
    assert bases == {"tiny-llama": ["alice", "bob"], "tiny-llama-1": ["carol"]}
    assert pool.model("alice") is pool.model("bob")
    assert pool.model("alice") is not pool.model("carol")
    assert _base_weight(pool, "alice").data_ptr() == _base_weight(pool, "bob").data_ptr()
    assert _base_weight(pool, "alice").data_ptr() != _base_weight(pool, "carol").data_ptr()
    assert pool.model("bob").active_adapter == "bob"


def test_fresh_adapter_equals_base_and_adapters_are_independent(pool, tmp_path):
    pool.save_adapter("bob", tmp_path / "bob")
    before_alice, before_bob = _logits(pool, "alice"), _logits(pool, "bob")
    with pool.model("alice").disable_adapter(), torch.no_grad():
        tokenizer = pool.tokenizer("bob")
        ids = tokenizer(pool.prompt_text("bob", "What is 2 + 2?"), return_tensors="pt", add_special_tokens=False)
        base = pool.model("bob").base_model.model(**ids).logits
    assert torch.equal(before_bob, base)  # B = 0 at init

    with torch.no_grad():
        _lora_b(pool, "bob").add_(torch.randn_like(_lora_b(pool, "bob")))
    assert not torch.equal(_lora_b(pool, "alice"), _lora_b(pool, "bob"))
    assert torch.equal(_logits(pool, "alice"), before_alice)
    assert not torch.allclose(_logits(pool, "bob"), before_bob)

    pool.load_adapter("bob", tmp_path / "bob")
    assert torch.equal(_logits(pool, "bob"), before_bob)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_adapter_round_trip_in_peft_format(pool, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        _lora_b(pool, "carol").normal_(std=0.1)
    expected = _logits(pool, "carol")
    pool.save_adapter("carol", tmp_path / "carol")
    config = json.loads((tmp_path / "carol" / ADAPTER_CONFIG).read_text())
    base_dir = Path(pool.tokenizer("carol").name_or_path)
    assert config["r"] == 4 and config["base_model_name_or_path"] == str(base_dir.resolve())  # a path, not an alias
    assert sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert (tmp_path / "carol" / ADAPTER_WEIGHTS).is_file()
    assert not list((tmp_path / "carol").glob("*.bin"))

    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), tmp_path / "carol").eval()
    tokenizer = pool.tokenizer("carol")
    ids = tokenizer(pool.prompt_text("carol", "What is 2 + 2?"), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        assert torch.allclose(plain(**ids).logits, expected, atol=1e-6)


def test_loading_an_adapter_of_another_shape_replaces_it(pool, tmp_path):
    wide = ModelPool(
        PoolConfig.model_validate({"members": [{"name": "carol", "model": "tiny-llama-1"}]}),
        LoraConfig(r=8, alpha=16, target_modules=["q_proj"]),
        seed=3,
    )
    with torch.no_grad():
        _lora_b(wide, "carol").normal_(std=0.1)
    wide.save_adapter("carol", tmp_path / "wide")
    pool.load_adapter("carol", tmp_path / "wide")
    assert pool.model("carol").peft_config["carol"].r == 8
    assert torch.allclose(_logits(pool, "carol"), _logits(wide, "carol"), atol=1e-6)


def test_initial_adapter_from_config(pool, tmp_path):
    with torch.no_grad():
        _lora_b(pool, "alice").normal_(std=0.1)
    pool.save_adapter("alice", tmp_path / "alice")
    config = _pool_config().model_copy(deep=True)
    config.members = [config.members[0].model_copy(update={"adapter": str(tmp_path / "alice")})]
    restored = ModelPool(config, LoraConfig(r=4, alpha=8), seed=99)
    assert torch.equal(_lora_b(restored, "alice"), _lora_b(pool, "alice"))
    (tmp_path / "alice" / ADAPTER_WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match="only safetensors"):
        pool.load_adapter("alice", tmp_path / "alice")


def test_lora_init_is_seeded_per_member(pool):
    again = ModelPool(_pool_config(), LoraConfig(r=4, alpha=8), seed=0)
    layer = lambda p, m: p.model(m).base_model.model.model.layers[1].self_attn.v_proj.lora_A[m].weight  # noqa: E731
    assert torch.equal(layer(again, "bob"), layer(ModelPool(_pool_config(), LoraConfig(r=4, alpha=8), seed=0), "bob"))
    assert not torch.equal(layer(again, "alice"), layer(again, "bob"))


def test_prompts_sampling_and_tokenizer(pool):
    assert pool.messages("alice", "Hi") == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
    ]
    assert pool.messages("bob", "Hi") == [{"role": "user", "content": "Hi"}]
    assert pool.prompt_text("alice", "Hi").startswith("<|im_start|>system\nYou are terse.<|im_end|>")
    assert pool.prompt_text("bob", "Hi").endswith("<|im_start|>assistant\n")
    assert pool.sampling("bob") == SamplingConfig(temperature=0.0, max_new_tokens=5)
    assert pool.sampling("alice").temperature == 0.9
    assert pool.tokenizer("alice").padding_side == "left" and pool.tokenizer("alice").pad_token is not None
    with pytest.raises(KeyError, match="unknown member 'dave'"):
        pool.model("dave")
    assert next(pool.model("alice").parameters()).dtype == torch.float32


def test_member_names_must_suit_peft():
    config = PoolConfig.model_validate({"members": [{"name": "qwen2.5", "model": "tiny-llama"}]})
    with pytest.raises(ValueError, match="member name 'qwen2.5' contains '.'.*'qwen2_5'"):
        ModelPool(config, LoraConfig(), seed=0)
