"""DPO of one member as it ran before the reference pass was ours, kept here only to be measured against.

The project's own ``train_member`` of commit 2ec8318 (src/sparta/backends/hf/training.py), with its pieces
imported from today's modules: TRL's ``DPOTrainer`` with ``precompute_ref_log_probs`` computes the reference
log-probabilities itself, in its constructor: it hashes the whole shared model (``ref_model`` is None) to name a
dataset cache file, runs prompt + chosen and prompt + rejected through its fused head (every position scored off
CUDA) and writes the cache file. Only the timing is added: the reference pass and the optimizer steps are timed
as in today's path, so both report the same ``seconds*`` fields.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, set_seed

from sparta.backends.hf.dpo_data import check_end_of_turn, fit_pairs
from sparta.backends.hf.pool import ModelPool
from sparta.backends.hf.trainer_args import model_device
from sparta.backends.hf.training import (
    StepWatch,
    _check_finite_adapter,
    _stop_token_ids,
    _summary,
    dpo_config,
    lora_dropout,
    preference_collator,
    quiet_trainer,
    restoring_shared_model,
)
from sparta.config import TrainingConfig
from sparta.records import PreferencePair


@cache
def _trl_reference_trainer() -> type:
    from trl import DPOTrainer

    class TRLReferenceDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

        def _precompute_ref_logps(self, dataset, name, batch_size):
            start = time.perf_counter()
            dataset = super()._precompute_ref_logps(dataset, name, batch_size)
            self.reference_seconds = time.perf_counter() - start
            return dataset

    return TRLReferenceDPOTrainer


def train_member_trl_reference(
    pool: ModelPool, member: str, pairs: Sequence[PreferencePair], out_dir: Path, training: TrainingConfig, seed: int
) -> dict[str, Any]:
    """``train_member`` with TRL's own reference pass; returns the same metrics."""
    from datasets import Dataset

    start = time.perf_counter()
    peft_model = pool.model(member)
    peft_model.set_adapter(member)
    inner, tokenizer = peft_model.get_base_model(), pool.tokenizer(member)
    collator = preference_collator(tokenizer, training.max_length)
    fitted = fit_pairs(pool, member, pairs, collator)
    if not fitted.pairs:  # as today's path: nothing to train on, the adapter saved unchanged
        pool.save_adapter(member, Path(out_dir))
        return {"steps": 0, "pairs_trained": 0}
    check_end_of_turn(member, fitted, _stop_token_ids(inner, tokenizer))
    set_seed(seed)
    watch = StepWatch(member, lambda n: None, device=model_device(inner))
    with (
        tempfile.TemporaryDirectory(prefix="sparta-dpo-") as scratch,
        quiet_trainer(),
        restoring_shared_model(peft_model, member),
    ):
        trainer = _trl_reference_trainer()(
            model=inner,
            args=dpo_config(training, seed, Path(scratch), inner),
            data_collator=collator,
            train_dataset=Dataset.from_list([tokens.row() for tokens in fitted.tokens]),
            processing_class=tokenizer,
            callbacks=[watch],
        )
        trainer.remove_callback(PrinterCallback)
        with lora_dropout(peft_model, member, training.lora.dropout):
            result = trainer.train()
        steps = trainer.state.global_step
        _check_finite_adapter(peft_model, member, steps)
        reference_s = trainer.reference_seconds
        del trainer
    pool.save_adapter(member, Path(out_dir))
    seconds = {
        "seconds": time.perf_counter() - start,
        "seconds_in_steps": watch.step_seconds,
        "seconds_reference": reference_s,
    }
    return {**_summary(watch, float(result.training_loss), steps, seconds), "pairs_trained": len(fitted.pairs)}
