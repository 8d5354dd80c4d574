"""Arguments of every TRL trainer of ours (DPO, and SFT in init-pool): one device, the pool's precision, no extras.

**One device: the model's.** Left to itself, ``TrainingArguments`` picks ``cuda:0`` whatever device the model is
on, makes it the current CUDA device, and counts every visible GPU in ``n_gpu``; the ``Trainer`` then moves the
model to ``cuda:0`` (with ``pool.device: cuda:1``, the shared model leaves the device every other stage uses) and,
with several GPUs visible, wraps it in ``nn.DataParallel`` (the batch split over GPUs, and TRL's bound forward is
not DataParallel-safe: TRL 1.16 refuses it). Our arguments take the device of the model they train: ``device``
is that device, ``n_gpu`` is at most 1, and the current CUDA device is the model's while the trainer runs (see
:func:`on_device`). Placement over several GPUs is one process (or Ray worker) per GPU, never one Trainer.

**Precision** (``training.precision``): ``auto`` follows the weights of the pool's base. A bfloat16 base trains
under bf16 autocast and a float16 base under fp16 autocast with loss scaling, as the Trainer's ``bf16``/``fp16``
flags do; the LoRA weights and AdamW's state stay float32 (PEFT keeps adapters in float32), so the small updates
of a low learning rate are not rounded away. A float32 base trains without autocast: on CPUs without native
bf16, bf16 autocast is far slower (~100x measured on AVX2), and TRL's own default (bf16 on) is overridden.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import torch

from sparta.backends.hf.forward import model_device

PRECISION_FLAGS = {"fp32": {}, "bf16": {"bf16": True}, "fp16": {"fp16": True}}
"""``training.precision`` as the Trainer's mixed-precision flags (both default to off here)."""

_DTYPE_PRECISION = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def base_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype holding most of the model's weights (the base's: LoRA adapters are small and float32)."""
    counts: dict[torch.dtype, int] = {}
    for param in model.parameters():
        counts[param.dtype] = counts.get(param.dtype, 0) + param.numel()
    return max(counts, key=counts.__getitem__)


def resolved_precision(precision: str, model: torch.nn.Module) -> str:
    """``fp32``, ``bf16`` or ``fp16``: ``precision`` itself, or for ``auto`` the one of the model's base weights."""
    if precision != "auto":
        return precision
    return _DTYPE_PRECISION.get(base_dtype(model), "fp32")


@cache
def one_device(config_class: type) -> type:
    """``config_class`` (a ``TrainingArguments`` subclass such as TRL's ``DPOConfig``) pinned to ``model_device``."""

    @dataclasses.dataclass
    class OneDevice(config_class):
        model_device: str = dataclasses.field(
            default="cpu",
            metadata={"help": "the device of the model trained: the trainer's only device (never DataParallel)"},
        )

        @cached_property
        def _setup_devices(self) -> torch.device:
            default = super()._setup_devices  # accelerate's state, set up as the Trainer expects
            device = torch.device(self.model_device)
            if device.type == "cuda":
                torch.cuda.set_device(device)  # accelerate places tensors on "cuda", the current device
                self._n_gpu = 1
                return device
            return default

    OneDevice.__name__ = OneDevice.__qualname__ = f"OneDevice{config_class.__name__}"
    return OneDevice


@contextmanager
def on_device(device: torch.device) -> Iterator[None]:
    """Make ``device`` the current CUDA device while a trainer is built and runs; the previous one returns after."""
    with torch.cuda.device(device) if device.type == "cuda" else nullcontext():
        yield


def trainer_defaults(
    config_class: type, seed: int, output_dir: Path, model: torch.nn.Module, precision: str = "auto"
) -> dict[str, Any]:
    """Settings every TRL trainer of ours shares: seeded, quiet, no checkpoints, the model's device alone, the
    precision of :func:`resolved_precision`, no gradient checkpointing (pointless for LoRA on small models).
    Build the arguments with ``one_device(config_class)(**these, ...)``."""
    # transformers 5 renamed gradient checkpointing; the old name still works but warns
    fields = config_class.__dataclass_fields__
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    device = model_device(model)
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
        **PRECISION_FLAGS[resolved_precision(precision, model)],
        "use_cpu": device.type == "cpu",
        "model_device": str(device),
        "dataloader_num_workers": 0,
        checkpointing: False,
    }
