"""DPO of one member on the shared base: reference = the member at the start of the round, only its adapter moves."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from peft import get_peft_model_state_dict  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from sparta.backends.hf import training  # noqa: E402
from sparta.backends.hf.dpo_data import preference_rows  # noqa: E402
from sparta.backends.hf.pool import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ModelPool  # noqa: E402
from sparta.backends.hf.training import TrainingDivergedError, train_member  # noqa: E402
from sparta.config import LoraConfig, PoolConfig, TrainingConfig  # noqa: E402
from sparta.records import PreferencePair  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _own_cache(cache):
    """Every test of this module uses its own model cache."""


def _pool(**member_extra) -> ModelPool:
    config = PoolConfig.model_validate(
        {
            "members": [
                {"name": "alice", "model": "tiny-llama", "system_prompt": "You are terse.", **member_extra},
                {"name": "bob", "model": "tiny-llama"},
            ]
        }
    )
    return ModelPool(config, LoraConfig(r=4, alpha=8, dropout=0.1), seed=0)


@pytest.fixture
def pool(cache) -> ModelPool:
    return _pool()


def _pairs(n: int = 8) -> list[PreferencePair]:
    return [
        PreferencePair(
            prompt=f"What is {i} + {i + 1}?",
            chosen=f"The answer is {2 * i + 1}.",
            rejected="Cat dog tree river the blue.",
            chosen_model="bob",
            rejected_model="alice",
            margin=1.0,
            instruction_id=f"q{i}",
        )
        for i in range(n)
    ]


def _config(**overrides) -> TrainingConfig:
    values = {"beta": 0.1, "learning_rate": 1e-3, "epochs": 1, "batch_size": 4, "max_length": 128}
    return TrainingConfig(**{**values, **overrides})


def _adapter(pool: ModelPool, member: str) -> dict[str, torch.Tensor]:
    state = get_peft_model_state_dict(pool.model(member), adapter_name=member)
    return {k: v.detach().clone() for k, v in state.items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _perturb(pool: ModelPool, member: str, std: float = 0.5) -> None:
    """Make the member's adapter differ from the base, as after an earlier round of training."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in pool.model(member).named_parameters():
            if f"lora_A.{member}." in name or f"lora_B.{member}." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * std)


def _answer_logp(pool: ModelPool, member: str, instruction: str, answer: str, adapter: bool = True) -> float:
    """log p(answer + end of turn | templated prompt), computed independently of TRL."""
    tokenizer = pool.tokenizer(member)
    prompt = pool.prompt_text(member, instruction)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(prompt + answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids
    model = pool.model(member)
    ids = torch.tensor([full_ids])
    with torch.no_grad():
        if adapter:
            logits = model(input_ids=ids).logits
        else:
            with model.disable_adapter():
                logits = model(input_ids=ids).logits
    logps = torch.log_softmax(logits[0, :-1].float(), dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    return float(logps[len(prompt_ids) - 1 :].sum())


def _mean_margin(pool: ModelPool, member: str, pairs: list[PreferencePair]) -> float:
    margins = [
        _answer_logp(pool, member, p.prompt, p.chosen) - _answer_logp(pool, member, p.prompt, p.rejected) for p in pairs
    ]
    return sum(margins) / len(margins)


def test_dpo_raises_the_margin_and_touches_only_the_member(pool, tmp_path):
    pairs = _pairs(8)
    bob_before, alice_before = _adapter(pool, "bob"), _adapter(pool, "alice")
    inner = pool.model("alice").get_base_model()
    base_before = {k: v.clone() for k, v in inner.state_dict().items() if "lora_" not in k}
    margin_before = _mean_margin(pool, "alice", pairs)
    calls: list[int] = []

    metrics = train_member(pool, "alice", pairs, tmp_path / "alice", _config(epochs=3), seed=0, progress=calls.append)

    assert metrics["steps"] == 6 and calls == [1] * 6
    assert math.isfinite(metrics["loss"]) and metrics["loss"] < math.log(2)
    assert metrics["final_loss"] < math.log(2)
    assert 0.0 <= metrics["rewards/accuracies"] <= 1.0 and metrics["rewards/margins"] > 0
    assert metrics["seconds"] > 0 and metrics["seconds_per_step"] > 0
    assert _mean_margin(pool, "alice", pairs) > margin_before + 0.5
    assert not _same(_adapter(pool, "alice"), alice_before)
    assert _same(_adapter(pool, "bob"), bob_before)
    assert all(torch.equal(v, base_before[k]) for k, v in inner.state_dict().items() if "lora_" not in k)
    # saved in PEFT format, equal to the trained adapter in memory
    saved = load_file(str(tmp_path / "alice" / ADAPTER_WEIGHTS))
    assert (tmp_path / "alice" / ADAPTER_CONFIG).is_file()
    assert _same(saved, _adapter(pool, "alice"))
    # the shared model is left as found: no patched forward, eval mode, LoRA dropout intact
    assert "forward" not in inner.__dict__ and not pool.model("bob").training
    assert {m.p for m in inner.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    assert inner.config.use_cache  # the next round's generation needs its KV cache back


def test_reference_is_the_member_at_the_start_of_the_round(pool, tmp_path, monkeypatch):
    pairs, beta = _pairs(4), 1.0
    _perturb(pool, "alice", std=1.0)
    # every pair is in the first step: without this, the policy's own log-probs would stand in for the reference pass
    monkeypatch.setattr(training, "first_step_is_reference", lambda model, config: False)

    # the adapter really differs from the base: with the base as reference, step-0 rewards would be far from 0
    def logp(p: PreferencePair, adapter: bool) -> float:
        return _answer_logp(pool, "alice", p.prompt, p.chosen, adapter)

    base_rewards = [beta * (logp(p, True) - logp(p, False)) for p in pairs]
    assert abs(sum(base_rewards) / len(base_rewards)) > 0.1

    # one optimizer step over all pairs: TRL's logged rewards are those of step 0, where policy == reference
    metrics = train_member(pool, "alice", pairs, tmp_path / "a", _config(batch_size=4, beta=beta), seed=0)

    assert metrics["steps"] == 1
    assert metrics["rewards/chosen"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["rewards/rejected"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["loss"] == pytest.approx(math.log(2), abs=1e-4)


def test_divergence_raises_restores_the_adapter_and_saves_nothing(pool, tmp_path):
    _perturb(pool, "alice", std=0.05)
    before = _adapter(pool, "alice")

    def poison(_: int) -> None:  # after the first optimizer step the adapter goes bad
        with torch.no_grad():
            for name, param in pool.model("alice").named_parameters():
                if "lora_A.alice." in name:
                    param.fill_(float("inf"))

    with pytest.raises(TrainingDivergedError, match=r"'alice' diverged at optimizer step 2") as caught:
        train_member(pool, "alice", _pairs(8), tmp_path / "out", _config(batch_size=2), seed=0, progress=poison)

    assert caught.value.member == "alice" and caught.value.step == 2 and not math.isfinite(caught.value.loss)
    assert not (tmp_path / "out").exists()
    assert _same(_adapter(pool, "alice"), before)
    assert "forward" not in pool.model("alice").get_base_model().__dict__


def test_zero_pairs_saves_the_adapter_unchanged(pool, tmp_path):
    _perturb(pool, "bob", std=0.1)
    before = _adapter(pool, "bob")
    calls: list[int] = []

    metrics = train_member(pool, "bob", [], tmp_path / "bob", _config(), seed=0, progress=calls.append)

    assert metrics == {"steps": 0, "pairs_trained": 0, "pairs_too_long": 0, "pairs_reference_reused": 0}
    assert calls == []
    assert _same(load_file(str(tmp_path / "bob" / ADAPTER_WEIGHTS)), before)


def test_prompts_that_fill_max_length_are_skipped_and_counted(pool, tmp_path):
    long = PreferencePair("word " * 80, "yes", "no", "bob", "alice", 1.0, "long")

    metrics = train_member(pool, "alice", [long], tmp_path / "x", _config(max_length=16), seed=0)
    assert metrics == {"steps": 0, "pairs_trained": 0, "pairs_too_long": 1, "pairs_reference_reused": 0}

    metrics = train_member(pool, "alice", [long, *_pairs(2)], tmp_path / "y", _config(max_length=64), seed=0)
    assert metrics["steps"] == 1 and (metrics["pairs_trained"], metrics["pairs_too_long"]) == (2, 1)


def _dropouts_run(pool: ModelPool, member: str, config: TrainingConfig, tmp_path) -> list[tuple[float, bool, float]]:
    """(p, training mode, share of zeroed inputs) of every Dropout module that runs during ``train_member``."""
    calls = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Dropout):
            zeroed = float((output == 0).float().mean() - (inputs[0] == 0).float().mean())
            calls.append((module.p, module.training, zeroed))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        metrics = train_member(pool, member, _pairs(4), tmp_path / member, config, seed=0)
    finally:
        handle.remove()
    assert metrics["steps"] == 1
    return calls


def test_lora_dropout_is_active_during_the_dpo_step_and_restored_after(pool, tmp_path):
    inner = pool.model("alice").get_base_model()
    before = {
        name: (module, module.p) for name, module in inner.named_modules() if isinstance(module, torch.nn.Dropout)
    }
    config = _config(lora=LoraConfig(r=4, alpha=8, dropout=0.3))
    active = [
        (p, zeroed) for p, training, zeroed in _dropouts_run(pool, "alice", config, tmp_path) if training and p > 0
    ]
    assert active and {p for p, _ in active} == {0.3}
    assert 0.2 < sum(zeroed for _, zeroed in active) / len(active) < 0.4  # about 30% of the LoRA inputs dropped
    after = {name: (module, module.p) for name, module in inner.named_modules() if isinstance(module, torch.nn.Dropout)}
    assert after == before  # the same modules, with the pool's own p (0.1), back in place


def test_without_lora_dropout_no_dropout_runs_in_the_dpo_step(pool, tmp_path):
    calls = _dropouts_run(pool, "alice", _config(lora=LoraConfig(r=4, alpha=8, dropout=0.0)), tmp_path)
    in_steps = [p for p, training, _ in calls if training]
    assert in_steps and all(p == 0 for p in in_steps)  # the pool's 0.1 is off during DPO, as TRL sets it
    assert all(zeroed == 0 for _, _, zeroed in calls)  # the reference pass runs in eval mode: nothing dropped


def test_training_is_seeded(pool, tmp_path):
    start = tmp_path / "start"
    pool.save_adapter("alice", start)
    results = []
    for run in range(2):
        pool.load_adapter("alice", start)
        train_member(pool, "alice", _pairs(8), tmp_path / f"run{run}", _config(batch_size=2), seed=7)
        results.append(_adapter(pool, "alice"))
    assert _same(*results)


def test_rows_use_the_member_template_and_end_the_turn(pool):
    rows = preference_rows(pool, "alice", _pairs(1))
    assert rows[0]["prompt"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 0 + 1?"},
    ]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "The answer is 1."}]


def test_a_template_without_end_of_turn_is_refused(tmp_path, cache):
    pool = _pool()
    pool.tokenizer("alice").chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    before = _adapter(pool, "alice")
    with pytest.raises(ValueError, match="does not end an assistant turn"):
        train_member(pool, "alice", _pairs(2), tmp_path / "a", _config(), seed=0)
    assert _same(_adapter(pool, "alice"), before) and not (tmp_path / "a").exists()


def test_members_train_one_after_another_on_the_shared_base(pool, tmp_path):
    train_member(pool, "alice", _pairs(4), tmp_path / "alice", _config(), seed=0)
    alice_after = _adapter(pool, "alice")
    bob_before = _adapter(pool, "bob")

    metrics = train_member(pool, "bob", _pairs(4), tmp_path / "bob", _config(), seed=0)

    assert metrics["steps"] == 1
    assert not _same(_adapter(pool, "bob"), bob_before)
    assert _same(_adapter(pool, "alice"), alice_after)
    assert _same(load_file(str(tmp_path / "alice" / ADAPTER_WEIGHTS)), alice_after)


def test_training_sends_no_usage_report_to_the_hub(pool, tmp_path, monkeypatch):
    """TRL trainers post a usage report to the Hugging Face Hub when built; a run must not leave loopback."""
    from queue import Queue

    from huggingface_hub.utils import _telemetry

    monkeypatch.delenv("CI", raising=False)  # TRL stays quiet on CI machines only
    monkeypatch.setattr(_telemetry, "_TELEMETRY_QUEUE", Queue())
    monkeypatch.setattr(_telemetry, "_start_telemetry_thread", lambda: None)  # whatever is queued stays queued
    train_member(pool, "alice", _pairs(4), tmp_path / "alice", _config(), seed=0)
    assert _telemetry._TELEMETRY_QUEUE.empty()


def _reference_pairs(monkeypatch) -> list[int]:
    """Records how many pairs each call of the reference pass computes."""
    counts: list[int] = []
    real = training.reference_logps

    def counted(model, tokens, pad_id, batch_size):
        counts.append(len(tokens))
        return real(model, tokens, pad_id, batch_size)

    monkeypatch.setattr(training, "reference_logps", counted)
    return counts


def test_the_first_steps_pairs_need_no_reference_pass(pool, tmp_path, monkeypatch):
    start = tmp_path / "start"
    _perturb(pool, "alice", std=0.2)
    pool.save_adapter("alice", start)
    initial = _adapter(pool, "alice")
    config = _config(batch_size=2, gradient_accumulation_steps=2)  # the first step: two micro-batches, 4 pairs
    counts = _reference_pairs(monkeypatch)
    shortcut = train_member(pool, "alice", _pairs(10), tmp_path / "a", config, seed=3)
    assert counts == [6]
    after_shortcut = _adapter(pool, "alice")

    pool.load_adapter("alice", start)
    monkeypatch.setattr(training, "first_step_is_reference", lambda model, config: False)
    full = train_member(pool, "alice", _pairs(10), tmp_path / "b", config, seed=3)
    assert counts == [6, 10]
    assert shortcut["steps"] == full["steps"] == 3
    assert shortcut["loss"] == pytest.approx(full["loss"], abs=1e-5)
    after_full = _adapter(pool, "alice")
    assert all(torch.allclose(after_shortcut[k], after_full[k], atol=1e-5) for k in after_full)
    assert not _same(after_full, initial)  # the steps did move the adapter


def test_the_trainer_visits_pairs_in_the_order_it_would_by_itself(pool, tmp_path, monkeypatch):
    """Our sampler is the Trainer's own shuffle: swapping it for the Trainer's changes no weight."""
    from trl import DPOTrainer

    start = tmp_path / "start"
    pool.save_adapter("alice", start)
    monkeypatch.setattr(training, "first_step_is_reference", lambda model, config: False)
    config = _config(batch_size=2, epochs=2)
    adapters = []
    for own in (True, False):
        pool.load_adapter("alice", start)
        if not own:
            monkeypatch.setattr(training._tokenized_trainer(), "_get_train_sampler", DPOTrainer._get_train_sampler)
        train_member(pool, "alice", _pairs(8), tmp_path / str(own), config, seed=5)
        adapters.append(_adapter(pool, "alice"))
    assert _same(*adapters)


def test_a_reference_missing_after_the_first_step_is_an_error(pool, tmp_path, monkeypatch):
    before = _adapter(pool, "alice")
    monkeypatch.setattr(training, "first_step_rows", lambda size, seed, config: [size - 1])  # not the first step's
    with pytest.raises(RuntimeError, match="reference log-probabilities missing at optimizer step"):
        train_member(pool, "alice", _pairs(8), tmp_path / "a", _config(batch_size=1), seed=0)
    assert _same(before, _adapter(pool, "alice"))
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("lora_dropout", "epochs", "attention_dropout", "expected"),
    [(0.0, 1, 0.0, True), (0.1, 1, 0.0, False), (0.0, 2, 0.0, False), (0.0, 1, 0.1, False), (0.0, 0.5, 0.0, True)],
)
def test_the_policy_is_the_reference_only_without_randomness(pool, lora_dropout, epochs, attention_dropout, expected):
    inner = pool.model("alice").get_base_model()
    config = _config(lora=LoraConfig(r=4, alpha=8, dropout=lora_dropout), epochs=epochs)
    previous = inner.config.attention_dropout
    inner.config.attention_dropout = attention_dropout
    try:
        assert training.first_step_is_reference(inner, config) is expected
    finally:
        inner.config.attention_dropout = previous


def test_with_lora_dropout_every_pair_gets_the_reference_pass(pool, tmp_path, monkeypatch):
    counts = _reference_pairs(monkeypatch)
    config = _config(lora=LoraConfig(r=4, alpha=8, dropout=0.1), batch_size=2)
    train_member(pool, "alice", _pairs(6), tmp_path / "a", config, seed=0)
    assert counts == [6]
