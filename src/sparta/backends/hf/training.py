"""DPO for one pool member: TRL's ``DPOTrainer`` on the member's own LoRA adapter of the shared base model.

The pool keeps every member as a named LoRA adapter on ONE loaded copy of its base model. To train a member
we hand TRL the *inner* transformers model (``peft_model.get_base_model()``), with the member's adapter active
and the only trainable weights, instead of the ``PeftModel`` itself. Why:

- SPARTA's reference policy is the member as it was at the start of the round. For a ``PeftModel`` TRL 1.16
  takes its reference from the adapter-disabled base (or from a copy of an adapter that must be named
  ``"default"``); for a plain model with ``precompute_ref_log_probs=True`` it computes the reference log-probs
  with the model itself, before the first update. With the member's adapter active that is exactly the member
  at the start of the round, and no second copy of anything is loaded.
- The optimizer only sees parameters with ``requires_grad``, which ``set_adapter(member)`` restricts to the
  member's own adapter: the base and the other members' adapters stay untouched.

The shared model is left as it was found (forward method, dropout, train/eval mode); if training diverges the
member's adapter is restored to its weights from before the call and nothing is saved.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import PrinterCallback, TrainerCallback, set_seed

from sparta.config import TrainingConfig
from sparta.errors import SpartaError
from sparta.records import PreferencePair

if TYPE_CHECKING:
    from peft import PeftModel

    from sparta.backends.hf.pool import ModelPool

log = logging.getLogger(__name__)

Progress = Callable[[int], None]

REWARD_METRICS = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")
"""TRL's implicit-reward statistics, averaged over the optimizer steps into the returned metrics."""


class TrainingDivergedError(SpartaError, RuntimeError):
    """The DPO loss (or gradient norm) of a member became NaN or infinite; nothing was saved."""

    def __init__(self, member: str, step: int, loss: float, what: str = "loss") -> None:
        self.member, self.step, self.loss = member, step, loss
        super().__init__(
            f"DPO training of member {member!r} diverged at optimizer step {step}: {what} = {loss}. "
            "Its adapter was restored to the weights it had before this round and nothing was saved; "
            "lower training.learning_rate or raise training.beta."
        )


# --------------------------------------------------------------------------------------------- data


def preference_rows(pool: ModelPool, member: str, pairs: Sequence[PreferencePair]) -> list[dict[str, Any]]:
    """TRL's conversational preference format, with the member's own system prompt in the prompt.

    Conversational rows let TRL render prompt and prompt+answer with the member's chat template, so the
    completion carries the template's end-of-turn token (checked by :func:`_check_end_of_turn`).
    """
    return [
        {
            "prompt": pool.messages(member, pair.prompt),
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}],
        }
        for pair in pairs
    ]


def _prompt_tokens(pool: ModelPool, member: str, instruction: str) -> int:
    text = pool.prompt_text(member, instruction)
    return len(pool.tokenizer(member)(text, add_special_tokens=False)["input_ids"])


def _fitting_pairs(
    pool: ModelPool, member: str, pairs: Sequence[PreferencePair], max_length: int
) -> tuple[list[PreferencePair], int]:
    """Pairs whose templated prompt leaves room for an answer within ``max_length``; the rest are skipped
    loudly (TRL would drop them silently, and a cut prompt would train on a context never seen at inference)."""
    kept = [p for p in pairs if _prompt_tokens(pool, member, p.prompt) < max_length]
    skipped = len(pairs) - len(kept)
    if skipped:
        log.warning(
            "member %s: skipping %d of %d preference pairs whose prompt fills training.max_length=%d tokens",
            member,
            skipped,
            len(pairs),
            max_length,
        )
    return kept, skipped


def _stop_token_ids(model: torch.nn.Module, tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id}
    generation = getattr(model, "generation_config", None)
    eos = getattr(generation, "eos_token_id", None)
    ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
    return {i for i in ids if i is not None}


def _check_end_of_turn(member: str, dataset: Any, stop_ids: set[int]) -> None:
    """Every tokenized answer must contain a stop token, or DPO would teach the member never to stop."""
    for column in ("chosen_ids", "rejected_ids"):
        for index, ids in enumerate(dataset[column]):
            if not stop_ids.intersection(ids):
                raise ValueError(
                    f"member {member!r}: its chat template does not end an assistant turn with an end-of-turn "
                    f"token (looked for ids {sorted(stop_ids)} in {column} of pair {index}); fix the template "
                    "or the tokenizer's eos_token before training"
                )


# --------------------------------------------------------------------------------------------- the trainer


def dpo_config(training: TrainingConfig, seed: int, output_dir: Path, use_cpu: bool):
    """TRL's ``DPOConfig`` from ours. TRL's own defaults that do not suit us are overridden on purpose:
    bf16 (TRL turns it on; ~100x slower on CPU) and gradient checkpointing (pointless for LoRA on small models)."""
    from trl import DPOConfig

    return DPOConfig(
        beta=training.beta,
        learning_rate=training.learning_rate,
        num_train_epochs=training.epochs,
        per_device_train_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        max_length=training.max_length,
        loss_type=[training.loss_type],
        precompute_ref_log_probs=True,
        report_to=list(training.report_to) or "none",
        **trainer_defaults(DPOConfig, seed, output_dir, use_cpu),
    )


def trainer_defaults(config_class: type, seed: int, output_dir: Path, use_cpu: bool) -> dict[str, Any]:
    """Settings every TRL trainer of ours shares: seeded, quiet, no checkpoints, fp32, no gradient checkpointing."""
    # transformers 5 renamed gradient checkpointing; the old name still works but warns
    fields = config_class.__dataclass_fields__
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {
        "output_dir": str(output_dir),
        "seed": seed,
        "data_seed": seed,
        "save_strategy": "no",
        "logging_steps": 1,
        "logging_nan_inf_filter": False,  # a NaN loss must reach our divergence check
        "disable_tqdm": True,
        "bf16": False,
        "fp16": False,
        "use_cpu": use_cpu,
        "dataloader_num_workers": 0,
        checkpointing: False,
    }


class _StepWatch(TrainerCallback):
    """Reports each optimizer step, keeps its log, and stops at the first NaN/inf loss or gradient norm."""

    def __init__(self, member: str, progress: Progress) -> None:
        self.member, self.progress = member, progress
        self.logs: list[dict[str, float]] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.progress(1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        for what in ("loss", "grad_norm"):
            value = logs.get(what)
            if value is not None and not math.isfinite(float(value)):
                raise TrainingDivergedError(self.member, state.global_step, float(value), what)
        self.logs.append(dict(logs))


@contextmanager
def quiet_trainer() -> Iterator[None]:
    """No progress bars from ``datasets`` or TRL's reference pass (the caller drives its own), and no
    deprecation notices about names that only the Trainer itself uses."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    previous = os.environ.get("TQDM_DISABLE")
    datasets.disable_progress_bars()
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


@contextmanager
def restoring_shared_model(peft_model: PeftModel, member: str) -> Iterator[None]:
    """Undo what a TRL trainer (DPO here, SFT in init-pool) does to the shared model besides training the adapter.

    TRL patches the model's ``forward`` (a fused LM head) and zeroes every dropout; the Trainer leaves it in
    train mode. On any error the member's adapter weights are restored as well.
    """
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    inner = peft_model.get_base_model()
    own_forward = inner.__dict__.get("forward")
    dropout = {m: m.p for m in inner.modules() if isinstance(m, torch.nn.Dropout)}
    was_training = peft_model.training
    use_cache = inner.config.use_cache  # the Trainer turns the KV cache off; generation wants it back
    before = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model, adapter_name=member).items()}
    try:
        yield
    except BaseException:
        with torch.no_grad():
            set_peft_model_state_dict(peft_model, before, adapter_name=member)
        raise
    finally:
        if own_forward is None:
            inner.__dict__.pop("forward", None)
        else:
            inner.forward = own_forward
        for module, p in dropout.items():
            module.p = p
        inner.config.use_cache = use_cache
        peft_model.train(was_training)
        peft_model.set_adapter(member)


def _check_finite_adapter(peft_model: PeftModel, member: str, steps: int) -> None:
    from peft import get_peft_model_state_dict

    for name, tensor in get_peft_model_state_dict(peft_model, adapter_name=member).items():
        if not torch.isfinite(tensor).all():
            raise TrainingDivergedError(member, steps, float("nan"), f"adapter weight {name}")


def _summary(watch: _StepWatch, mean_loss: float, steps: int, skipped: int, seconds: float, run_s: float) -> dict:
    """``seconds`` covers the whole call (reference pass, setup, saving); ``seconds_per_step`` the steps alone."""
    metrics: dict[str, Any] = {
        "loss": mean_loss,
        "final_loss": watch.logs[-1]["loss"] if watch.logs else mean_loss,
        "steps": steps,
        "seconds": seconds,
        "seconds_per_step": run_s / max(steps, 1),
    }
    for key in REWARD_METRICS:
        values = [entry[key] for entry in watch.logs if key in entry]
        if values:
            metrics[key] = sum(values) / len(values)
    if skipped:
        metrics["skipped_long_prompts"] = skipped
    return metrics


# --------------------------------------------------------------------------------------------- entry point


def train_member(
    pool: ModelPool,
    member: str,
    pairs: Sequence[PreferencePair],
    out_dir: Path,
    training: TrainingConfig,
    seed: int,
    progress: Progress = lambda n: None,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Train ``member`` with DPO on ``pairs`` (reference: the member as it is now) and save its adapter.

    The adapter lands in ``out_dir`` in PEFT format. ``progress(1)`` is called after every optimizer step.
    ``log_dir`` is where ``training.report_to`` integrations (e.g. tensorboard) write; by default a sibling
    ``<out_dir>.logs`` when ``report_to`` is set, a temporary directory otherwise.
    Returns ``loss`` (mean over steps), ``final_loss``, ``steps``, ``seconds``, ``seconds_per_step`` and the
    mean of TRL's implicit-reward statistics (``rewards/accuracies``, ...). Zero pairs: ``{"steps": 0}``,
    the adapter saved unchanged. Raises :class:`TrainingDivergedError` on a NaN/inf loss, saving nothing.
    """
    from datasets import Dataset
    from trl import DPOTrainer

    start = time.perf_counter()
    out_dir = Path(out_dir)
    peft_model = pool.model(member)
    peft_model.set_adapter(member)  # active and trainable, whatever mode the pool left it in
    kept, skipped = _fitting_pairs(pool, member, pairs, training.max_length)
    if not kept:
        pool.save_adapter(member, out_dir)
        return {"steps": 0, **({"skipped_long_prompts": skipped} if skipped else {})}

    set_seed(seed)
    inner = peft_model.get_base_model()
    use_cpu = next(inner.parameters()).device.type == "cpu"
    if log_dir is None and training.report_to:
        log_dir = out_dir.with_name(out_dir.name + ".logs")
    watch = _StepWatch(member, progress)
    with (
        tempfile.TemporaryDirectory(prefix="sparta-dpo-") as scratch,
        quiet_trainer(),
        restoring_shared_model(peft_model, member),
    ):
        trainer = DPOTrainer(
            model=inner,
            args=dpo_config(training, seed, Path(log_dir or scratch), use_cpu),
            train_dataset=Dataset.from_list(preference_rows(pool, member, kept)),
            processing_class=pool.tokenizer(member),
            callbacks=[watch],
        )
        trainer.remove_callback(PrinterCallback)
        _check_end_of_turn(member, trainer.train_dataset, _stop_token_ids(inner, pool.tokenizer(member)))
        result = trainer.train()
        run_s = float(result.metrics.get("train_runtime", 0.0))
        steps = trainer.state.global_step
        _check_finite_adapter(peft_model, member, steps)
        del trainer
    pool.save_adapter(member, out_dir)
    return _summary(watch, float(result.training_loss), steps, skipped, time.perf_counter() - start, run_s)
