"""Each row of a batch through its own member's LoRA adapter, on the one shared base model.

PEFT can do this (``adapter_names``): per layer and adapter it gathers that adapter's rows, applies the adapter
and scatters the result back, after rebuilding the row lists in Python. With a batch whose rows are grouped by
adapter (the callers sort them so) the gather is a slice: the base layers run with PEFT's adapters switched
off, and a hook on every LoRA layer adds ``B_k(A_k(x[rows of k])) * scaling_k`` to those rows of its output,
which is the same arithmetic as PEFT's own LoRA forward. Layers our hook does not cover (LoRA variants such as
DoRA, a LoRA bias, non-linear layers) or rows not grouped by adapter fall back to PEFT's ``adapter_names``;
a batch of one adapter simply activates it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

Runs = list[tuple[str, int, int]]
"""(adapter, first row, end row) for every stretch of consecutive rows that share an adapter."""


def adapter_runs(adapters: Sequence[str]) -> Runs | None:
    """The stretches of rows per adapter, or None when an adapter's rows are not all consecutive."""
    runs: Runs = []
    for row, name in enumerate(adapters):
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1], row + 1)
        elif any(name == seen for seen, _, _ in runs):
            return None
        else:
            runs.append((name, row, row + 1))
    return runs


def _plain_lora(layer: Any) -> bool:
    """A LoRA linear layer whose adapters are plain ``B(A(x)) * scaling`` (no variant, no bias, not merged)."""
    from peft.tuners.lora import Linear as LoraLinear

    if not isinstance(layer, LoraLinear) or layer.merged or layer.lora_variant:
        return False
    return not any(getattr(layer, "lora_bias", {}).get(name, False) for name in layer.lora_A)


def _add_deltas(layer: Any, args: tuple, output: torch.Tensor, holder: RowAdapters) -> torch.Tensor:
    """Forward hook: add every run's adapter to its rows of the base layer's output (in place)."""
    x = args[0]
    for name, start, end in holder.runs:
        if name not in layer.lora_A:
            continue
        a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
        delta = F.linear(F.linear(x[start:end].to(a.dtype), a), b) * layer.scaling[name]
        output[start:end] += delta.to(output.dtype)
    return output


def _inject_names(_layer: Any, args: tuple, kwargs: dict, holder: RowAdapters) -> tuple[tuple, dict]:
    return args, {**kwargs, "adapter_names": holder.names}


class RowAdapters:
    """Which adapter each row of the next forward passes of ``model`` (a PeftModel) uses; ``release`` undoes it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.names: list[str] = []
        self.runs: Runs = []
        self._hooks: list[Any] = []
        self._sliced = False
        self._layers: list[Any] | None = None

    def use(self, adapters: Sequence[str]) -> None:
        """Route row i through ``adapters[i]`` until the next call."""
        names, runs = list(adapters), adapter_runs(adapters)
        if self._hooks and (runs is not None or not self._sliced):
            self.names, self.runs = names, runs or []  # the hooks read these: rows left the batch
            return
        self.release()
        self.names, self.runs = names, runs or []
        if len(set(names)) == 1:
            self.model.set_adapter(names[0])
        elif runs is not None and all(_plain_lora(m) for m in self._tuner_layers()):
            self.model.base_model.disable_adapter_layers()
            self._sliced = True
            hook = functools.partial(_add_deltas, holder=self)
            self._hooks = [layer.register_forward_hook(hook) for layer in self._tuner_layers()]
        else:
            hook = functools.partial(_inject_names, holder=self)
            self._hooks = [layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in self._tuner_layers()]

    def _tuner_layers(self) -> list[Any]:
        """The model's LoRA (tuner) layers, found once per batch."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        if self._layers is None:
            self._layers = [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]
        return self._layers

    def release(self) -> None:
        """Remove the hooks and give PEFT its adapters back."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if self._sliced:
            self.model.base_model.enable_adapter_layers()
            self._sliced = False
