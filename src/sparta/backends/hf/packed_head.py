"""The output head of inference passes through oneDNN with its weight packed once, where that is measured faster.

A small model's output head is its largest matrix (SmolLM2-135M: 49152 x 576, a fifth of a token's arithmetic) and
decoding multiplies it by a few dozen rows at a time. On a 2-core AMD EPYC PyTorch's default fp32 product (MKL)
runs it at 41-45 GFLOP/s for 24-32 rows, where oneDNN, given the weight once reordered into its own blocked layout,
runs it at 91-101, and 1.15-1.3x faster for 256-1024 rows (benchmarks/output_head.py, benchmarks/README.md).
Which library wins depends on the processor, the threads and the rows, so each head is timed both ways here, with
``FEW_ROWS`` rows (decoding) and ``MANY_ROWS`` (a prefill), best of 3 (``precision.best_seconds``); the packed
layout serves only the row counts where it was at least ``MIN_SPEEDUP`` times faster. The decision is kept in the
model cache with the dtype decisions (``precision``), so every process on one machine computes the same logits.

``packed_head(model)`` installs it for the passes inside (``forward.Running``: answering and judging). No gradient
flows through it: a pass that records gradients takes the module's own forward. A weight changed in place is packed
again. The packed copy costs the head's size in memory once per model; heads under ``MIN_PARAMETERS`` (the test
models) are never packed. Either way the head gets its rows as one contiguous matrix: a strided slice of hidden
states (``logits_to_keep``) otherwise sends PyTorch to a batched product, measured 1.3x (49 kept positions of 111)
to 3.6x (2 of 217) slower for eight SmolLM2 rows.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from sparta.backends.hf.precision import best_seconds, machine_name, read_decision, write_decision

MIN_PARAMETERS = 1 << 20
"""Heads with fewer weights are left to PyTorch: their product costs less than measuring it."""
FEW_ROWS = 32
"""Rows of the decoding probe; passes of up to ``2 * FEW_ROWS`` rows follow its verdict."""
MANY_ROWS = 256
"""Rows of the prefill probe; larger passes follow its verdict."""
MIN_SPEEDUP = 1.1
RECIPE = "packed-head/1"


@dataclass(frozen=True)
class HeadChoice:
    """Whether the packed weight serves passes of few rows and of many, the seconds behind each verdict, and why
    nothing was measured when nothing was (``note``)."""

    few: bool
    many: bool
    seconds: dict[str, float]
    note: str = ""

    def packs(self, rows: int) -> bool:
        return self.few if rows <= 2 * FEW_ROWS else self.many


def available(head: torch.nn.Module) -> bool:
    """A plain linear head on a CPU where PyTorch has oneDNN, large enough to be worth measuring."""
    return (
        type(head) is torch.nn.Linear
        and head.weight.device.type == "cpu"
        and head.weight.numel() >= MIN_PARAMETERS
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def _pack(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach())


def _packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def measure(head: torch.nn.Linear) -> HeadChoice:
    """Time the head both ways with ``FEW_ROWS`` and then ``MANY_ROWS`` rows of random states."""
    weight, bias = head.weight.detach(), None if head.bias is None else head.bias.detach()
    packed = _pack(weight)
    generator = torch.Generator().manual_seed(0)
    seconds: dict[str, float] = {}
    with torch.inference_mode():
        for label, rows in (("few", FEW_ROWS), ("many", MANY_ROWS)):
            x = torch.randn(rows, weight.shape[1], generator=generator).to(weight.dtype)
            seconds[f"{label}_plain"] = best_seconds(lambda x=x: F.linear(x, weight, bias), weight.device)
            seconds[f"{label}_packed"] = best_seconds(lambda x=x: _packed_linear(x, packed, bias), weight.device)
    wins = {label: seconds[f"{label}_packed"] * MIN_SPEEDUP <= seconds[f"{label}_plain"] for label in ("few", "many")}
    return HeadChoice(wins["few"], wins["many"], seconds)


def choose(head: torch.nn.Linear) -> HeadChoice:
    """This machine's verdict for a head of this shape: from the model cache, else measured now and kept."""
    key = {
        "recipe": RECIPE,
        "machine": machine_name(head.weight.device),
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
        "head": f"{tuple(head.weight.shape)} {head.weight.dtype} bias={head.bias is not None}",
    }
    saved = read_decision("packed-head", key)
    if saved is not None:
        try:
            return HeadChoice(bool(saved["few"]), bool(saved["many"]), dict(saved["seconds"]), str(saved["note"]))
        except (KeyError, TypeError, ValueError):
            pass
    try:
        choice = measure(head)
    except RuntimeError as error:  # oneDNN without a kernel for this dtype on this CPU: PyTorch's product it is
        choice = HeadChoice(False, False, {}, f"not measured: {error}"[:200])
    write_decision("packed-head", key, asdict(choice))
    return choice


class PackedHead:
    """What ``packed_head`` puts in place of a head's ``forward``: the packed product where the verdict says so."""

    def __init__(self, head: torch.nn.Linear, choice: HeadChoice) -> None:
        self._head = weakref.ref(head)  # the head keeps this alive, not the other way round
        self.choice = choice
        self.dtype = head.weight.dtype
        """The dtype the verdict was measured in; the head converted to another is measured again."""
        self._packed: torch.Tensor | None = None
        self._packed_from: tuple[int, int] | None = None

    @property
    def head(self) -> torch.nn.Linear:
        head = self._head()
        if head is None:
            raise RuntimeError("the output head this packed forward served no longer exists")
        return head

    def weight(self) -> torch.Tensor:
        """The packed weight, packed again if the head's weight was replaced or changed in place."""
        weight = self.head.weight
        state = (weight.data_ptr(), weight._version)
        if self._packed is None or self._packed_from != state:
            self._packed, self._packed_from = _pack(weight), state
        return self._packed

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        head = self.head
        rows = hidden.reshape(-1, hidden.shape[-1])  # one contiguous matrix; a copy only for a strided slice
        recording = torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad)
        if not recording and self.choice.packs(len(rows)) and rows.dtype == head.weight.dtype:
            logits = _packed_linear(rows, self.weight(), None if head.bias is None else head.bias.detach())
        else:
            logits = F.linear(rows, head.weight, head.bias)
        return logits.view(*hidden.shape[:-1], logits.shape[-1])


_INSTALLED: weakref.WeakKeyDictionary[torch.nn.Module, PackedHead] = weakref.WeakKeyDictionary()
"""Per head: its packed forward, built on first use and kept with the head (the packed weight lives as long)."""


@contextmanager
def packed_head(model: torch.nn.Module, choose: Callable[[torch.nn.Linear], HeadChoice] = choose) -> Iterator[None]:
    """Inside, ``model``'s output head computes through :class:`PackedHead`; its own forward is back afterwards.

    A head that is not :func:`available`, or whose forward is already replaced (a nested use, another patch), is
    left alone.
    """
    head = model.get_output_embeddings()
    if head is None or not available(head) or "forward" in head.__dict__:
        yield
        return
    if head not in _INSTALLED or _INSTALLED[head].dtype != head.weight.dtype:
        _INSTALLED[head] = PackedHead(head, choose(head))
    head.forward = _INSTALLED[head]
    try:
        yield
    finally:
        del head.forward
