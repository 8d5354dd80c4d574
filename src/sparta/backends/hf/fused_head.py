"""TRL's fused output head, scoring the labelled tokens alone on every device.

TRL 1.16 trains DPO and SFT through a fused output head (``trl.trainer.utils.add_fused_lm_head``): each labelled
token's log-probability, computed vocabulary tile by tile without materializing the logits. On CUDA and XPU it
projects only the positions that carry a label. On every other device it projects every position, prompt and
padding included, so that a compiled kernel (Neuron) sees one tile shape per batch shape. Run eagerly on a CPU,
that buys nothing and costs the head's product three times per unlabelled position (once forward, twice in the
backward pass, which recomputes the tile) and its per-token statistics (log-sum-exp, entropy, mean logit, top-1)
over the whole vocabulary. For SmolLM2-135M the head is 28M of the 134M multiply-adds of a token, and a DPO
batch's rows are the prompt twice (chosen and rejected) plus padding to the longest row.

The choice TRL makes is read from ``trl.trainer.utils._use_triton(device)``, which only the fused forward consults
there; under :func:`labelled_positions_only` it answers yes for every device. A masked position's log-probability
was zeroed anyway, so the loss and gradients are those of the full path up to the summation order of differently
shaped products (the adapters came out bit-identical in benchmarks/README.md's measurement). A TRL without that
switch is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def _labelled_only(device: object) -> bool:
    return True


@contextmanager
def labelled_positions_only() -> Iterator[None]:
    """While active, TRL's fused head projects the positions that carry a label and no others, on any device."""
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:
        yield
        return
    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        yield
        return
    trl_utils._use_triton = _labelled_only
    try:
        yield
    finally:
        trl_utils._use_triton = original
