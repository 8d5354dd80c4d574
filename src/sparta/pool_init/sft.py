"""Supervised fine-tuning of one pool member: TRL's ``SFTTrainer`` on the member's own LoRA adapter.

As for DPO (``backends/hf/training.py``), TRL gets the *inner* transformers model of the pool's shared
``PeftModel``, with the member's adapter active: ``set_adapter(member)`` leaves the member's LoRA weights the only
ones with ``requires_grad``, so the base and the other members' adapters stay untouched.

Rows are conversational prompt-completion pairs (``prompt``: the member's system prompt and the instruction,
``completion``: the assistant turn), so TRL renders them with the member's chat template and its default
``completion_only_loss`` trains on the assistant turn alone, end-of-turn token included. An example that does not
fit ``max_length`` is skipped and counted, never cut (a cut answer would teach the member not to stop).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import PrinterCallback, set_seed

from sparta.backends.hf.forward import model_device
from sparta.backends.hf.fused_head import labelled_positions_only
from sparta.backends.hf.trainer_args import on_device, one_device, trainer_defaults
from sparta.backends.hf.training import StepWatch, quiet_trainer, restoring_shared_model
from sparta.config import ConfigError
from sparta.errors import SpartaError
from sparta.pool_init.config import SFTSettings
from sparta.pool_init.subsets import Example

if TYPE_CHECKING:
    import torch

    from sparta.backends.hf.pool import ModelPool

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


class SFTDivergedError(SpartaError, RuntimeError):
    """The SFT loss of a member became NaN or infinite; its adapter was restored and nothing was saved."""


def sft_rows(pool: ModelPool, member: str, examples: Sequence[Example]) -> list[dict[str, Any]]:
    """TRL's conversational prompt-completion format, with the member's own system prompt."""
    return [
        {"prompt": pool.messages(member, ex.prompt), "completion": [{"role": "assistant", "content": ex.response}]}
        for ex in examples
    ]


def _tokens(pool: ModelPool, member: str, example: Example) -> int:
    tokenizer = pool.tokenizer(member)
    messages = [*pool.messages(member, example.prompt), {"role": "assistant", "content": example.response}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def fitting_examples(
    pool: ModelPool, member: str, examples: Sequence[Example], max_length: int
) -> tuple[list[Example], int]:
    """The examples that fit ``max_length`` tokens whole, and how many did not."""
    kept = [ex for ex in examples if _tokens(pool, member, ex) <= max_length]
    skipped = len(examples) - len(kept)
    if skipped:
        log.warning(
            "member %s: skipping %d of %d SFT examples longer than sft.max_length=%d tokens",
            member,
            skipped,
            len(examples),
            max_length,
        )
    return kept, skipped


def sft_config(settings: SFTSettings, seed: int, output_dir: Path, model: torch.nn.Module):
    """TRL's ``SFTConfig`` from ours, on the device of ``model`` alone and in the precision of its weights
    (``trainer_args``: TRL's bf16 default is ~100x slower on CPU; checkpointing buys nothing for LoRA here)."""
    from trl import SFTConfig

    return one_device(SFTConfig)(
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_length=settings.max_length,
        completion_only_loss=True,
        report_to="none",
        **trainer_defaults(SFTConfig, seed, output_dir, model),
    )


def _diverged(member: str, step: int, loss: float, what: str) -> SFTDivergedError:
    return SFTDivergedError(f"SFT of member {member!r} diverged at step {step}: {what} {loss}; lower sft.learning_rate")


def train_sft(
    pool: ModelPool,
    member: str,
    examples: Sequence[Example],
    settings: SFTSettings,
    seed: int,
    progress: Progress = lambda n: None,
) -> dict[str, Any]:
    """Fine-tune ``member``'s adapter in place on ``examples``; the caller saves it.

    Returns ``examples`` (trained on), ``skipped_long`` (over ``max_length``), ``steps``, ``first_loss``,
    ``final_loss``, ``mean_loss`` and ``seconds``. Raises ValueError when no example fits ``max_length``.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    start = time.perf_counter()
    kept, skipped = fitting_examples(pool, member, examples, settings.max_length)
    if not kept:
        raise ConfigError(
            f"member {member!r}: none of its {len(examples)} SFT examples fits "
            f"sft.max_length={settings.max_length} tokens"
        )
    peft_model = pool.model(member)
    inner = peft_model.get_base_model()
    set_seed(seed)
    watch = StepWatch(member, progress, _diverged, watched=("loss",), device=model_device(inner))
    with (
        tempfile.TemporaryDirectory(prefix="sparta-sft-") as scratch,
        quiet_trainer(),
        restoring_shared_model(peft_model, member),
        on_device(model_device(inner)),
    ):
        trainer = SFTTrainer(
            model=inner,
            args=sft_config(settings, seed, Path(scratch), inner),
            train_dataset=Dataset.from_list(sft_rows(pool, member, kept)),
            processing_class=pool.tokenizer(member),
            callbacks=[watch],
        )
        trainer.remove_callback(PrinterCallback)
        with labelled_positions_only():
            result = trainer.train()
        steps = trainer.state.global_step
        del trainer
    return {
        "examples": len(kept),
        "skipped_long": skipped,
        "steps": steps,
        "first_loss": watch.losses[0] if watch.losses else None,
        "final_loss": watch.losses[-1] if watch.losses else None,
        "mean_loss": float(result.training_loss),
        "seconds": time.perf_counter() - start,
    }
