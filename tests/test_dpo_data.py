"""What DPO trains on: our token ids equal TRL's own for complete answers, a cut answer stays open, and a pair
TRL's collator would cut is dropped and counted instead of trained on half."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from sparta.backends.hf import training  # noqa: E402
from sparta.backends.hf.dpo_data import (  # noqa: E402
    PairTokens,
    fit_pairs,
    pair_tokens,
    preference_rows,
    trained_whole,
)
from sparta.backends.hf.judges import turn_end_id  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.config import LoraConfig, PoolConfig, TrainingConfig  # noqa: E402
from sparta.records import PreferencePair  # noqa: E402


@pytest.fixture(scope="module")
def pool(cache) -> ModelPool:
    members = [{"name": "alice", "model": "tiny-llama", "system_prompt": "You are terse."}]
    return ModelPool(PoolConfig.model_validate({"members": members}), LoraConfig(r=4, alpha=8), seed=0)


def _pair(chosen: str = "The answer is 3.", rejected: str = "Cat dog tree.", **flags) -> PreferencePair:
    return PreferencePair(
        prompt="What is 1 + 2?",
        chosen=chosen,
        rejected=rejected,
        chosen_model="b",
        rejected_model="c",
        margin=1.0,
        instruction_id="q",
        **flags,
    )


def _ids(pool: ModelPool, text: str) -> list[int]:
    return pool.tokenizer("alice")(text, add_special_tokens=False)["input_ids"]


def test_complete_pairs_tokenize_exactly_as_trl_does(pool):
    """TRL's own preparation of the conversational rows (a real DPOTrainer) gives our ids, token for token."""
    from datasets import Dataset
    from trl import DPOTrainer

    pairs = [_pair(), _pair("Three.", "It is 4, I think, or maybe five."), _pair("3", "")]
    peft_model = pool.model("alice")
    with (
        tempfile.TemporaryDirectory() as scratch,
        training.quiet_trainer(),
        training.restoring_shared_model(peft_model, "alice"),
    ):
        config = training.dpo_config(TrainingConfig(max_length=256), 0, Path(scratch), peft_model.get_base_model())
        trainer = DPOTrainer(
            model=peft_model.get_base_model(),
            args=config,
            train_dataset=Dataset.from_list(preference_rows(pool, "alice", pairs)),
            processing_class=pool.tokenizer("alice"),
        )
        theirs = [{k: row[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for row in trainer.train_dataset]
    ours = [pair_tokens(pool.tokenizer("alice"), pool.messages("alice", p.prompt), p).row() for p in pairs]
    assert ours == theirs


def test_a_cut_answer_has_no_end_of_turn(pool):
    tokenizer, messages = pool.tokenizer("alice"), pool.messages("alice", "What is 1 + 2?")
    end = turn_end_id(pool, "alice")
    complete = pair_tokens(tokenizer, messages, _pair())
    cut = pair_tokens(tokenizer, messages, _pair(chosen_truncated=True))
    assert end in complete.chosen_ids and end not in cut.chosen_ids
    assert cut.chosen_ids == _ids(pool, "The answer is 3.")  # the prefix, and nothing after it
    assert cut.prompt_ids == complete.prompt_ids and cut.rejected_ids == complete.rejected_ids


def test_the_fit_check_is_trls_own_truncation(pool):
    tokens = pair_tokens(pool.tokenizer("alice"), pool.messages("alice", "What is 1 + 2?"), _pair())
    longest = len(tokens.prompt_ids) + max(len(tokens.chosen_ids), len(tokens.rejected_ids))
    assert trained_whole(tokens, training.preference_collator(pool.tokenizer("alice"), longest))
    assert not trained_whole(tokens, training.preference_collator(pool.tokenizer("alice"), longest - 1))
    assert trained_whole(tokens, training.preference_collator(pool.tokenizer("alice"), None))
    assert not trained_whole(
        PairTokens([1, 2, 3], [4], [5, 6]), training.preference_collator(pool.tokenizer("alice"), 4)
    )


def test_a_long_answer_is_dropped_and_counted_never_trained_on_cut(pool, tmp_path):
    """The prompt alone fits: TRL would keep the pair and cut the answer's end (its turn end included)."""
    short, long = _pair(), _pair(rejected="word " * 60)
    prompt = pair_tokens(pool.tokenizer("alice"), pool.messages("alice", short.prompt), short).prompt_ids
    config = TrainingConfig(learning_rate=1e-3, batch_size=2, max_length=len(prompt) + 30)
    fitted = fit_pairs(pool, "alice", [short, long], training.preference_collator(pool.tokenizer("alice"), 64))
    assert fitted.pairs == [short] and fitted.too_long == 1
    metrics = training.train_member(pool, "alice", [short, long], tmp_path / "a", config, seed=0)
    assert (metrics["steps"], metrics["pairs_trained"], metrics["pairs_too_long"]) == (1, 1, 1)


def test_a_kept_cut_answer_reaches_trl_open(pool, tmp_path, monkeypatch):
    """What the trainer's collator receives: the cut answer without an end-of-turn token, the other with it."""
    seen: list[dict] = []
    real = training.preference_collator

    def recording(tokenizer, max_length):
        collator = real(tokenizer, max_length)
        original = collator.torch_call

        def call(examples):
            seen.extend(examples)
            return original(examples)

        collator.torch_call = call
        return collator

    monkeypatch.setattr(training, "preference_collator", recording)
    pair = _pair(rejected="It is four and", rejected_truncated=True)
    metrics = training.train_member(pool, "alice", [pair], tmp_path / "a", TrainingConfig(max_length=128), seed=0)
    assert metrics["steps"] == 1 and seen
    end = turn_end_id(pool, "alice")
    assert all(end in row["chosen_ids"] and end not in row["rejected_ids"] for row in seen)
    assert seen[-1]["rejected_ids"] == _ids(pool, "It is four and")
