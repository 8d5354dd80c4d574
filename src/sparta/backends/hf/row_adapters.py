"""Each row of a batch through its own member's LoRA adapter, on the one shared base model.

PEFT can do this (``adapter_names``): per layer and adapter it gathers that adapter's rows, applies the adapter
and scatters the result back, after rebuilding the row lists in Python. With a batch whose rows are grouped by
adapter (the callers sort them so) the gather is a slice: the base layers run with PEFT's adapters switched
off, and a hook on every LoRA layer adds ``B_k(A_k(x[rows of k])) * scaling_k`` to those rows of its output,
which is PEFT's own LoRA arithmetic up to float rounding. It does so for all adapters at once: the rows meet every
adapter's A stacked into one matrix, a mask keeps each row's own block of that product, and the adapters' B
(scaled) side by side finish it: two matrix products per layer instead of two per adapter. A decoding step is
thousands of such small products, each paying a parallel region's start-up more than its arithmetic (measured:
answering 4 members in one batch spent a fifth of its time in the per-adapter products).

Layers our hook does not cover (LoRA variants such as DoRA, a LoRA bias, non-linear layers) or rows not grouped
by adapter fall back to PEFT's ``adapter_names``; a batch of one adapter simply activates it.
"""

from __future__ import annotations

import functools
import weakref
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


def _stacked(layer: Any, holder: RowAdapters) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(every adapter's A stacked, every adapter's B x scaling side by side, the mask of each row's (or token's)
    own block), built once per layer and batch; None when this layer carries none of the batch's adapters."""
    key = id(layer)
    if key not in holder.stacked:
        names = tuple(name for name in holder.order if name in layer.lora_A)
        if not names:
            holder.stacked[key] = None
            return None
        a = torch.cat([layer.lora_A[name].weight for name in names])
        b = torch.cat([layer.lora_B[name].weight * layer.scaling[name] for name in names], dim=1)
        ranks = tuple(layer.lora_A[name].weight.shape[0] for name in names)
        holder.stacked[key] = a, b, _block_mask(holder, names, ranks, a)
    return holder.stacked[key]


def _block_mask(holder: RowAdapters, names: tuple[str, ...], ranks: tuple[int, ...], a: torch.Tensor) -> torch.Tensor:
    """Which columns of the stacked low-rank product each row (or token) keeps: its own adapter's block. Every
    layer with the same adapters and ranks shares one mask per batch (most layers of a model do)."""
    key = (names, ranks, a.dtype, a.device)
    if key not in holder.masks:
        column = {name: k for k, name in enumerate(names)}  # rows or tokens of adapters this layer lacks: none
        if holder.owners is None:
            owner = torch.tensor([column.get(n, -1) for n, s, e in holder.runs for _ in range(s, e)], device=a.device)
        else:
            index = torch.tensor([column.get(n, -1) for n in holder.order], device=a.device)
            owner = torch.where(holder.owners >= 0, index[holder.owners.clamp(min=0)], -1)
        blocks = torch.arange(len(names), device=a.device).repeat_interleave(torch.tensor(ranks, device=a.device))
        holder.masks[key] = (owner.unsqueeze(-1) == blocks).to(a.dtype)
    return holder.masks[key]


def _add_deltas(layer: Any, args: tuple, output: torch.Tensor, holder: RowAdapters) -> torch.Tensor:
    """Forward hook: add every row's own adapter to its row of the base layer's output (in place)."""
    stacked = _stacked(layer, holder)
    if stacked is None:
        return output
    a, b, mask = stacked
    x = args[0]
    low = F.linear(x.to(a.dtype), a)
    low = low * (mask if mask.dim() == low.dim() else mask.view(mask.shape[0], *([1] * (low.dim() - 2)), -1))
    if output.dtype == b.dtype and output.is_contiguous():
        # the product accumulates straight into the output: no second pass over it to add a temporary
        output.view(-1, output.shape[-1]).addmm_(low.reshape(-1, low.shape[-1]), b.T)
    else:
        output += F.linear(low, b).to(output.dtype)
    return output


def _inject_names(_layer: Any, args: tuple, kwargs: dict, holder: RowAdapters) -> tuple[tuple, dict]:
    return args, {**kwargs, "adapter_names": holder.names}


class RowAdapters:
    """Which adapter each row of the next forward passes of ``model`` (a PeftModel) uses; ``release`` undoes it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.names: list[str] = []
        self.runs: Runs = []
        self.order: list[str] = []
        """The batch's adapters, each once, in the order of their columns in ``stacked``."""
        self.owners: torch.Tensor | None = None
        """(rows, tokens): each token's adapter, an index into ``order`` (-1: none), when routed per token."""
        self.stacked: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = {}
        """Per layer: the stacked adapters of the current runs (``_stacked``); emptied whenever the runs change."""
        self.masks: dict[tuple, torch.Tensor] = {}
        """Per adapter layout: the block mask of the current runs (``_block_mask``); emptied with ``stacked``."""
        self._hooks: list[Any] = []
        self._sliced = False

    def routes_tokens(self) -> bool:
        """Whether :meth:`use_tokens` can serve this model: every LoRA layer plain (the hook's arithmetic)."""
        return all(_plain_lora(m) for m in self._tuner_layers())

    def use_tokens(self, order: Sequence[str], owners: torch.Tensor) -> None:
        """Route each token through its own adapter, ``order[owners[row, token]]`` (-1: the base alone), until the
        next call: rows of packed sequences of several adapters. Only where :meth:`routes_tokens`."""
        if not self.routes_tokens():
            raise ValueError("per-token adapters need plain LoRA layers (no DoRA, no LoRA bias)")
        if not self._sliced:
            self.release()
            _switch_adapter_layers(self.model, enabled=False)
            self._sliced = True
            hook = functools.partial(_add_deltas, holder=self)
            self._hooks = [layer.register_forward_hook(hook) for layer in self._tuner_layers()]
        self.stacked, self.masks, self.names, self.runs = {}, {}, [], []
        self.order, self.owners = list(order), owners

    def use(self, adapters: Sequence[str]) -> None:
        """Route row i through ``adapters[i]`` until the next call."""
        names, runs = list(adapters), adapter_runs(adapters)
        self.stacked, self.masks, self.owners = {}, {}, None
        self.order = list(dict.fromkeys(names))
        if self._hooks and (runs is not None or not self._sliced):
            self.names, self.runs = names, runs or []  # the hooks read these: rows left the batch
            return
        self.release()
        self.names, self.runs = names, runs or []
        if len(set(names)) == 1:
            self.model.set_adapter(names[0])
        elif runs is not None and all(_plain_lora(m) for m in self._tuner_layers()):
            _switch_adapter_layers(self.model, enabled=False)
            self._sliced = True
            hook = functools.partial(_add_deltas, holder=self)
            self._hooks = [layer.register_forward_hook(hook) for layer in self._tuner_layers()]
        else:
            hook = functools.partial(_inject_names, holder=self)
            self._hooks = [layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in self._tuner_layers()]

    def _tuner_layers(self) -> list[Any]:
        return _layers(self.model)[0]

    def release(self) -> None:
        """Remove the hooks and give PEFT its adapters back."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if self._sliced:
            _switch_adapter_layers(self.model, enabled=True)
            self._sliced = False


_LAYERS: weakref.WeakKeyDictionary[Any, tuple[frozenset, list[Any], list[Any]]] = weakref.WeakKeyDictionary()
"""Per PeftModel: its adapters (name and config object), its LoRA (tuner) layers, and every layer PEFT switches
with its adapters."""


def _layers(model: Any) -> tuple[list[Any], list[Any]]:
    """The model's tuner layers and the layers PEFT's ``enable_adapter_layers`` switches. Its modules are walked
    again only when an adapter was added or removed, not once per batch: four walks (two checks that the layers are
    plain, PEFT's switching off and on) cost a likelihood batch of SmolLM2 about 0.09 s, a twentieth of its time."""
    from peft.tuners.tuners_utils import AuxiliaryTrainingWrapper, BaseTunerLayer

    adapters = frozenset((name, id(config)) for name, config in model.peft_config.items())
    found = _LAYERS.get(model)
    if found is None or found[0] != adapters:
        modules = list(model.modules())
        tuners = [m for m in modules if isinstance(m, BaseTunerLayer)]
        switched = [m for m in modules if isinstance(m, (BaseTunerLayer, AuxiliaryTrainingWrapper))]
        found = _LAYERS[model] = (adapters, tuners, switched)
    return found[1], found[2]


def _switch_adapter_layers(model: Any, enabled: bool) -> None:
    """PEFT's ``disable_adapter_layers`` / ``enable_adapter_layers`` (each layer's ``enable_adapters``) over the
    layers found once. PEFT's warning about LoRA biases does not apply: the hooks only serve layers without one."""
    for layer in _layers(model)[1]:
        layer.enable_adapters(enabled)
