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

TRL is given token ids we built (``dpo_data``): a pair it would cut to ``training.max_length`` is dropped and
counted, and an answer cut by ``max_new_tokens`` is trained on without an end-of-turn token. It is also given the
reference log-probabilities, computed before the trainer is built (``reference``: each prompt once, the output head
on answer tokens only), so TRL neither runs its own reference pass nor hashes the shared model to cache one: its
``ref_model`` slot holds a :class:`_ReferenceSlot` with no weights. A pair whose two answers the round's likelihood
judge has already scored through this member, as it is now, takes those numbers (``answer_logps``). The
pairs of the first optimizer step need no reference pass at all when nothing in the policy's forward is random
(:func:`first_step_is_reference`): until that step's update the policy *is* the reference, so its own
log-probabilities, detached, serve as both. The trainer sees one device, the model's, and trains in the pool's
precision (``trainer_args``); in its steps each prompt runs once for both answers (``policy_pass``) and the output
head scores answer tokens alone (``fused_head``). The LoRA dropout of ``training.lora.dropout`` is active during the
steps (TRL zeroes it otherwise). The shared model is left as it was found (forward method, dropout, train/eval
mode, device); if training diverges the member's adapter is restored to its weights from before the call and
nothing is saved.
"""

from __future__ import annotations

import gc
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Sampler
from transformers import PrinterCallback, TrainerCallback, set_seed

from sparta.backends.hf.answer_logps import answer_digest
from sparta.backends.hf.dpo_data import TRUNCATION_MODE, FittedPairs, PairTokens, check_end_of_turn, fit_pairs
from sparta.backends.hf.forward import model_device
from sparta.backends.hf.fused_head import labelled_positions_only
from sparta.backends.hf.policy_pass import sharing_prompts
from sparta.backends.hf.reference import plain_head, reference_logps
from sparta.backends.hf.trainer_args import on_device, one_device, trainer_defaults
from sparta.config import TrainingConfig
from sparta.errors import SpartaError
from sparta.records import PreferencePair

if TYPE_CHECKING:
    from peft import PeftModel

    from sparta.backends.hf.pool import ModelPool

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


def _stop_token_ids(model: torch.nn.Module, tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id}
    generation = getattr(model, "generation_config", None)
    eos = getattr(generation, "eos_token_id", None)
    ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
    return {i for i in ids if i is not None}


def preference_collator(tokenizer: Any, max_length: int | None) -> Any:
    """TRL's own preference collator, as ``DPOTrainer`` would build it: the fit check and the trainer share it."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    return DataCollatorForPreference(
        pad_token_id=tokenizer.pad_token_id, max_length=max_length, truncation_mode=TRUNCATION_MODE
    )


REFERENCE_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
"""The dataset columns TRL's ``DPOTrainer`` reads its precomputed reference log-probabilities from."""


class _ReferenceSlot(torch.nn.Module):
    """What TRL's ``ref_model`` slot holds: the member as it was before the first step, without its weights.

    The reference log-probabilities are in the dataset before the trainer is built, so TRL never runs a reference
    model. Without one it would hash its policy's whole state dict (the base and every member's adapter, copied to
    the CPU) to name a cache file for them, once per member and round; this slot has no tensors to hash or move.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the reference log-probabilities are precomputed; the reference slot never runs")


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    """The order in which the Trainer visits ``size`` rows in ``epoch``: the shuffle accelerate's seedable sampler
    gives it by default (a generator seeded with the data seed plus the epoch), here computable in advance."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


class EpochOrder(Sampler[int]):
    """The Trainer's shuffle (:func:`epoch_order`) as a sampler of our own, so the rows of each step are known
    before the trainer is built; accelerate leaves a sampler that is not a ``RandomSampler`` as it is."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        yield from epoch_order(self.size, self.seed, self.epoch)
        self.epoch += 1


def first_step_rows(size: int, seed: int, training: TrainingConfig) -> list[int]:
    """The rows (dataset indices) the first optimizer step trains on: its micro-batches of the first epoch."""
    return epoch_order(size, seed, 0)[: training.batch_size * training.gradient_accumulation_steps]


def first_step_is_reference(model: torch.nn.Module, training: TrainingConfig) -> bool:
    """Whether the policy's forward in the first optimizer step equals the reference's exactly.

    It does when nothing in it is random: no LoRA dropout (TRL zeroes every dropout module of the model) and no
    dropout the model reads straight from its config (Llama's ``attention_dropout``). One epoch at most: a row of the
    first step met again later must have its reference ready by then.
    """
    if training.lora.dropout > 0 or training.epochs > 1:
        return False
    config = model.config.get_text_config().to_dict()
    rates = [v for k, v in config.items() if ("dropout" in k or "pdrop" in k) and isinstance(v, (int, float))]
    return not any(rate > 0 for rate in rates)


class _PolicyAsReference:
    """The model for a batch of the first optimizer step: what it returns is also the reference's.

    TRL's loss reads the batch's ``ref_*_logps`` after the model's forward; they are set here from the policy's own
    per-answer log-probabilities (summed as TRL sums them, detached), so the step's log-ratios are exactly zero, as
    they are for a policy that has not moved yet.
    """

    def __init__(self, model: Any, inputs: dict[str, Any]) -> None:
        self.model, self.inputs = model, inputs

    def __call__(self, **kwargs: Any) -> Any:
        outputs = self.model(**kwargs)
        if kwargs.get("fused_lm_head"):
            width = self.inputs["completion_mask"].shape[1] - 1
            logps = outputs.log_probs[:, -width:].detach().sum(dim=1)
            self.inputs[REFERENCE_COLUMNS[0]], self.inputs[REFERENCE_COLUMNS[1]] = logps.chunk(2, dim=0)
        return outputs


@cache
def _tokenized_trainer() -> type:
    """``DPOTrainer`` on rows we tokenized (``dpo_data``) and whose reference log-probabilities we computed."""
    from trl import DPOTrainer

    class TokenizedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            """TRL 1.16 tokenizes every dataset it is given, with no way to leave a cut answer's turn open."""
            return dataset

        def _get_train_sampler(self, train_dataset=None):
            dataset = self.train_dataset if train_dataset is None else train_dataset
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochOrder(len(dataset), seed)

        def _compute_loss(self, model, inputs, return_outputs):
            """Batches whose reference is not yet known (NaN) take the policy's own: the first step's alone."""
            missing = [torch.isnan(inputs[c]) for c in REFERENCE_COLUMNS if c in inputs]
            if not any(m.any() for m in missing):
                return super()._compute_loss(model, inputs, return_outputs)
            if self.state.global_step > 0 or self.ld_alpha is not None or not all(m.all() for m in missing):
                raise RuntimeError(
                    f"reference log-probabilities missing at optimizer step {self.state.global_step + 1}: only the "
                    "first step's pairs may take the policy's own"
                )
            return super()._compute_loss(_PolicyAsReference(model, inputs), inputs, return_outputs)

        def _precompute_ref_logps(self, dataset, name, batch_size):
            """The dataset's own reference columns; TRL's kernel fills them when our pass does not apply."""
            if all(column in dataset.column_names for column in REFERENCE_COLUMNS):
                return dataset
            start = time.perf_counter()
            dataset = _trl_reference(self, dataset, batch_size)
            self.reference_seconds = time.perf_counter() - start
            return dataset

    return TokenizedDPOTrainer


def _trl_reference(trainer: Any, dataset: Any, batch_size: int) -> Any:
    """Reference log-probabilities by TRL's own per-batch computation (models with logit soft-capping or scaling),
    without its model hash and cache file. The model is the member itself, before any step."""
    from torch.utils.data import DataLoader

    chosen, rejected = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=trainer.data_collator, shuffle=False):
        inputs = {key: value.to(trainer.args.device) for key, value in batch.items()}
        chosen_logps, rejected_logps = trainer.compute_ref_log_probs(trainer.model, inputs)
        chosen += chosen_logps.float().cpu().tolist()
        rejected += rejected_logps.float().cpu().tolist()
    return dataset.add_column(REFERENCE_COLUMNS[0], chosen).add_column(REFERENCE_COLUMNS[1], rejected)


def reference_batch_size(training: TrainingConfig) -> int:
    """Pairs per reference forward pass: ``training.reference_batch_size``, else the pairs of one optimizer step."""
    return training.reference_batch_size or training.batch_size * training.gradient_accumulation_steps


# --------------------------------------------------------------------------------------------- the trainer


def dpo_config(training: TrainingConfig, seed: int, output_dir: Path, model: torch.nn.Module):
    """TRL's ``DPOConfig`` from ours, on the device of ``model`` alone and in its precision (``trainer_args``)."""
    from trl import DPOConfig

    return one_device(DPOConfig)(
        beta=training.beta,
        learning_rate=training.learning_rate,
        num_train_epochs=training.epochs,
        per_device_train_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        max_length=training.max_length,
        truncation_mode=TRUNCATION_MODE,
        loss_type=[training.loss_type],
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=reference_batch_size(training),
        report_to=list(training.report_to) or "none",
        **trainer_defaults(DPOConfig, seed, output_dir, model, training.precision),
    )


Diverged = Callable[[str, int, float, str], Exception]
"""(member, optimizer step, the value that is not finite, what it measures) -> the error to raise."""


class StepWatch(TrainerCallback):
    """Reports each optimizer step, times it, keeps its log, and stops at the first NaN/inf among the ``watched``
    values.

    Shared by DPO (here) and init-pool's SFT, which differ only in the error they raise and what they watch.
    ``step_seconds`` sums the optimizer steps (forward, backward, update) of the model on ``device``.
    """

    def __init__(
        self,
        member: str,
        progress: Progress,
        diverged: Diverged = TrainingDivergedError,
        watched: tuple[str, ...] = ("loss", "grad_norm"),
        device: torch.device = torch.device("cpu"),
    ) -> None:
        self.member, self.progress, self.diverged, self.watched = member, progress, diverged, watched
        self.device = device
        self.logs: list[dict[str, float]] = []
        self.step_seconds = 0.0
        self._began = time.perf_counter()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the step's kernels are done, not merely queued
        return time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self._began = self._now()  # once per optimizer step, before its first micro-batch

    def on_step_end(self, args, state, control, **kwargs):
        self.step_seconds += self._now() - self._began
        self.progress(1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        for what in self.watched:
            value = logs.get(what)
            if value is not None and not math.isfinite(float(value)):
                raise self.diverged(self.member, state.global_step, float(value), what)
        self.logs.append(dict(logs))

    @property
    def losses(self) -> list[float]:
        return [float(entry["loss"]) for entry in self.logs]


@contextmanager
def quiet_trainer() -> Iterator[None]:
    """No progress bars from ``datasets`` or TRL's reference pass (the caller drives its own), no deprecation
    notices about names that only the Trainer itself uses, and no usage report: every TRL trainer posts one to the
    Hugging Face Hub when it is built (a DNS query and an HTTPS request per member and round) unless
    ``HF_HUB_DISABLE_TELEMETRY`` was set before ``huggingface_hub`` was imported."""
    import datasets
    from huggingface_hub import constants as hub

    was_enabled = datasets.is_progress_bar_enabled()
    previous = os.environ.get("TQDM_DISABLE")
    telemetry = hub.HF_HUB_DISABLE_TELEMETRY
    datasets.disable_progress_bars()
    os.environ["TQDM_DISABLE"] = "1"
    hub.HF_HUB_DISABLE_TELEMETRY = True  # read by huggingface_hub.utils.send_telemetry at each call
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        hub.HF_HUB_DISABLE_TELEMETRY = telemetry
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
    train mode; accelerate wraps ``forward`` in autocast under mixed precision and marks the model as prepared,
    which would make the next member's trainer skip its autocast. The model's own attributes come back as they
    were (added ones removed). On any error the member's adapter weights are restored as well.
    """
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    inner = peft_model.get_base_model()
    attributes = dict(inner.__dict__)
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
        for name in set(inner.__dict__) - set(attributes):
            del inner.__dict__[name]
        inner.__dict__.update(attributes)
        for module, p in dropout.items():
            module.p = p
        inner.config.use_cache = use_cache
        peft_model.train(was_training)
        peft_model.set_adapter(member)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the objects that exist now out of the garbage collector's sight while a trainer trains.

    accelerate's ``free_memory`` runs a full ``gc.collect()`` as every ``train()`` starts, over every object of the
    process (torch, transformers, datasets, the pool: 0.4-0.9 s here, per member and round); frozen, they are skipped,
    and the trainer's own garbage is still collected. They return to the collector afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def lora_dropout(peft_model: PeftModel, member: str, p: float) -> Iterator[None]:
    """``training.lora.dropout`` on the member's adapter for the DPO steps.

    TRL zeroes every dropout when it builds its trainer (``disable_dropout``), the model's own included, so that
    the reference log-probabilities it precomputes then are deterministic; the LoRA dropout is put back for the
    steps alone, as a fresh module, and the member's original modules return afterwards. ``p = 0`` changes nothing.
    """
    if p == 0:
        yield
        return
    swapped = []
    for module in peft_model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if isinstance(dropouts, torch.nn.ModuleDict) and member in dropouts:
            swapped.append((dropouts, dropouts[member]))
            dropouts[member] = torch.nn.Dropout(p)
    try:
        yield
    finally:
        for dropouts, original in swapped:
            dropouts[member] = original


def _check_finite_adapter(peft_model: PeftModel, member: str, steps: int) -> None:
    from peft import get_peft_model_state_dict

    for name, tensor in get_peft_model_state_dict(peft_model, adapter_name=member).items():
        if not torch.isfinite(tensor).all():
            raise TrainingDivergedError(member, steps, float("nan"), f"adapter weight {name}")


def _summary(watch: StepWatch, mean_loss: float, steps: int, seconds: dict[str, float]) -> dict:
    """Loss, reward statistics and where the time went: ``seconds`` is the whole call, ``seconds_in_steps`` the
    optimizer steps (forward, backward, update), ``seconds_reference`` the reference log-probabilities."""
    metrics: dict[str, Any] = {
        "loss": mean_loss,
        "final_loss": watch.logs[-1]["loss"] if watch.logs else mean_loss,
        "steps": steps,
        **seconds,
        "seconds_per_step": seconds["seconds_in_steps"] / max(steps, 1),
    }
    for key in REWARD_METRICS:
        values = [entry[key] for entry in watch.logs if key in entry]
        if values:
            metrics[key] = sum(values) / len(values)
    return metrics


def _judged_reference(tokens: PairTokens, judged: Mapping[str, float]) -> tuple[float, float] | None:
    """The pair's (chosen, rejected) reference log-probabilities if the member's judging computed both already."""
    chosen = judged.get(answer_digest(tokens.prompt_ids, tokens.chosen_ids))
    rejected = judged.get(answer_digest(tokens.prompt_ids, tokens.rejected_ids))
    return None if chosen is None or rejected is None else (chosen, rejected)


def _training_rows(
    inner: torch.nn.Module,
    fitted: FittedPairs,
    pad_id: int,
    training: TrainingConfig,
    seed: int,
    judged: Mapping[str, float],
) -> tuple[list[dict], int]:
    """The trainer's rows: token ids, with the reference log-probabilities where our pass applies (TRL's own
    kernel computes them otherwise, see ``_tokenized_trainer``); NaN for the first step's rows when the policy
    then is the reference (:func:`first_step_is_reference`); from ``judged`` (``answer_logps``) for the rows whose
    two answers the member's likelihood judging scored, the rest computed here. Also: how many rows took
    ``judged``."""
    rows = [tokens.row() for tokens in fitted.tokens]
    if not plain_head(inner):
        return rows, 0
    skipped = set(first_step_rows(len(rows), seed, training)) if first_step_is_reference(inner, training) else set()
    reused = {}
    for i in range(len(rows)):
        if i not in skipped and (values := _judged_reference(fitted.tokens[i], judged)) is not None:
            reused[i] = values
    needed = [i for i in range(len(rows)) if i not in skipped and i not in reused]
    values = reference_logps(inner, [fitted.tokens[i] for i in needed], pad_id, reference_batch_size(training))
    for i, chosen_logp, rejected_logp in zip(needed, *values):
        rows[i].update(zip(REFERENCE_COLUMNS, (chosen_logp, rejected_logp)))
    for i, pair_logps in reused.items():
        rows[i].update(zip(REFERENCE_COLUMNS, pair_logps))
    for i in skipped:
        rows[i].update(zip(REFERENCE_COLUMNS, (math.nan, math.nan)))
    return rows, len(reused)


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
    judged: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Train ``member`` with DPO on ``pairs`` (reference: the member as it is now) and save its adapter.

    The adapter lands in ``out_dir`` in PEFT format. ``progress(1)`` is called after every optimizer step.
    ``log_dir`` is where ``training.report_to`` integrations (e.g. tensorboard) write; by default a sibling
    ``<out_dir>.logs`` when ``report_to`` is set, a temporary directory otherwise. ``judged``: reference
    log-probabilities the member's likelihood judging computed as it is now (``answer_logps.round_references``).
    Returns ``loss`` (mean over steps), ``final_loss``, ``steps``, ``seconds`` (the whole call),
    ``seconds_in_steps`` (the optimizer steps), ``seconds_reference`` (the reference pass), ``seconds_per_step``,
    the mean of TRL's implicit-reward statistics (``rewards/accuracies``, ...), ``pairs_trained`` and
    ``pairs_too_long`` (pairs that do not fit ``training.max_length`` whole: dropped), ``pairs_reference_reused``
    (pairs whose reference the likelihood judge had computed, see ``answer_logps``). No pair to train on:
    ``steps`` 0, the adapter saved unchanged. Raises :class:`TrainingDivergedError` on a NaN/inf loss, saving nothing.
    """
    from datasets import Dataset

    start = time.perf_counter()
    out_dir = Path(out_dir)
    peft_model = pool.model(member)
    peft_model.set_adapter(member)  # active and trainable, whatever mode the pool left it in
    inner, tokenizer = peft_model.get_base_model(), pool.tokenizer(member)
    collator = preference_collator(tokenizer, training.max_length)
    fitted = fit_pairs(pool, member, pairs, collator)
    counts = {"pairs_trained": len(fitted.pairs), "pairs_too_long": fitted.too_long, "pairs_reference_reused": 0}
    if not fitted.pairs:
        pool.save_adapter(member, out_dir)
        return {"steps": 0, **counts}
    check_end_of_turn(member, fitted, _stop_token_ids(inner, tokenizer))

    set_seed(seed)
    if log_dir is None and training.report_to:
        log_dir = out_dir.with_name(out_dir.name + ".logs")
    watch = StepWatch(member, progress, device=model_device(inner))
    with (
        tempfile.TemporaryDirectory(prefix="sparta-dpo-") as scratch,
        quiet_trainer(),
        restoring_shared_model(peft_model, member),
        on_device(model_device(inner)),
    ):
        reference_start = time.perf_counter()
        rows, reused = _training_rows(inner, fitted, tokenizer.pad_token_id, training, seed, judged or {})
        reference_s = time.perf_counter() - reference_start
        trainer = _tokenized_trainer()(
            model=inner,
            ref_model=_ReferenceSlot(inner.config),
            args=dpo_config(training, seed, Path(log_dir or scratch), inner),
            data_collator=collator,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[watch],
        )
        reference_s += getattr(trainer, "reference_seconds", 0.0)  # TRL's kernel runs in the constructor
        trainer.remove_callback(PrinterCallback)
        # the reference log-probs are in: no dropout before the steps
        with (
            lora_dropout(peft_model, member, training.lora.dropout),
            frozen_heap(),
            labelled_positions_only(),
            sharing_prompts(trainer),
        ):
            result = trainer.train()
        steps = trainer.state.global_step
        _check_finite_adapter(peft_model, member, steps)
        del trainer
    pool.save_adapter(member, out_dir)
    seconds = {
        "seconds": time.perf_counter() - start,
        "seconds_in_steps": watch.step_seconds,
        "seconds_reference": reference_s,
    }
    counts["pairs_reference_reused"] = reused
    return {**_summary(watch, float(result.training_loss), steps, seconds), **counts}
