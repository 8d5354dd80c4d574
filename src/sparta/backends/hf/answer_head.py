"""The output head over a DPO step's answer tokens, on a CPU: the probabilities computed once and kept for backward.

TRL 1.16's fused head (``trl.kernels.ChunkedLogProbFunction``) never materializes the (tokens x vocabulary) logits:
the forward folds each vocabulary tile into running statistics and the backward computes every tile's product again.
That saves memory where memory is scarce (a GPU, a long batch); on a CPU it costs a third product of the head and,
without Triton, a dozen passes of elementwise torch operations over every tile. For the answer tokens of a DPO step
on a CPU (384 tokens for SmolLM2 in the demo's batches of 4 pairs: 75 MB of float32 probabilities) the whole
softmax fits with room to spare, so :class:`KeptProbabilities` computes the logits once, turns them into
probabilities in place, reads every statistic TRL asks for off them, and keeps them for the backward pass, which is
then one product (the gradient of the hidden states) and no second forward.

It serves only where its numbers are TRL's up to summation order: float32 states and head on a CPU, no autocast,
no gradient for the head's weights (a frozen head, as under LoRA), the probabilities under
``MAX_KEPT_BYTES``; anything else goes to TRL's kernel (:func:`answer_token_outputs`).
"""

from __future__ import annotations

from typing import Any

import torch

MAX_KEPT_BYTES = 1 << 30
"""Largest (tokens x vocabulary) float32 probabilities kept between the forward and backward passes; the logits
and probabilities coexist briefly, so the forward's peak is twice this."""

VOCAB_TILE = 32768
"""Vocabulary rows of each tile of TRL's fused head, when it serves: TRL 1.16's own width."""

OUTPUTS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")
"""What TRL's fused head returns, in its order; each but the first only when asked for."""


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Each row's dot product, without a (rows x columns) temporary."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2))[:, 0, 0]


class KeptProbabilities(torch.autograd.Function):
    """log p(target) and TRL's per-token statistics from one float32 product of the head (module docstring)."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, outputs: tuple[str, ...]):
        ctx.set_materialize_grads(False)
        logits = hidden @ weight.T
        log_z = torch.logsumexp(logits, dim=-1)
        target_logit = logits.gather(1, targets.unsqueeze(1))[:, 0]
        mean_logits = logits.mean(dim=-1) if "mean_logits" in outputs else None
        # argmax takes the first of tied maxima: a tie with an earlier token is not a top-1 prediction, as in TRL
        is_top1 = logits.argmax(dim=-1) == targets if "is_top1" in outputs else None
        probs = (logits - log_z.unsqueeze(1)).exp_()
        entropy = log_z - _row_dot(probs, logits) if "entropy" in outputs else None
        del logits
        log_sum_sq_probs = torch.log(_row_dot(probs, probs)) if "log_sum_sq_probs" in outputs else None
        ctx.save_for_backward(probs, weight, targets, entropy if entropy is not None else log_z)
        ctx.mark_non_differentiable(*(x for x in (log_sum_sq_probs, mean_logits, is_top1) if x is not None))
        return target_logit - log_z, entropy, log_sum_sq_probs, mean_logits, is_top1

    @staticmethod
    def backward(ctx: Any, grad_logprobs: torch.Tensor | None, grad_entropy: torch.Tensor | None, *_: Any):
        probs, weight, targets, entropy = ctx.saved_tensors
        grad = torch.zeros_like(probs)
        if grad_logprobs is not None:
            # d log p(target) / dz_j = 1[j = target] - p_j
            torch.mul(probs, -grad_logprobs.unsqueeze(1), out=grad)
            grad.scatter_add_(1, targets.unsqueeze(1), grad_logprobs.unsqueeze(1))
        if grad_entropy is not None:
            # d entropy / dz_j = -p_j (log p_j + entropy); xlogy is 0 where p_j underflowed to 0, as is the limit
            grad -= grad_entropy.unsqueeze(1) * (torch.xlogy(probs, probs) + probs * entropy.unsqueeze(1))
        return grad @ weight, None, None, None


def keeps_probabilities(hidden: torch.Tensor, head: torch.nn.Module) -> bool:
    """Whether :class:`KeptProbabilities` gives TRL's numbers here (module docstring)."""
    weight, bias = head.weight, getattr(head, "bias", None)
    return (
        hidden.device.type == "cpu"
        and not torch.is_autocast_enabled("cpu")
        and hidden.dtype == weight.dtype == torch.float32
        and bias is None
        and not weight.requires_grad
        and hidden.shape[0] * weight.shape[0] * 4 <= MAX_KEPT_BYTES
    )


def answer_token_outputs(
    hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor, outputs: tuple[str, ...]
) -> tuple[torch.Tensor | None, ...]:
    """Each row's log-probability of its target under ``head``, and the statistics in ``outputs`` (the rest None),
    in TRL's order (:data:`OUTPUTS`): ours where it applies, TRL's fused kernel elsewhere."""
    if keeps_probabilities(hidden, head):
        return KeptProbabilities.apply(hidden, head.weight, targets, outputs)
    from trl.kernels import ChunkedLogProbFunction

    bias = getattr(head, "bias", None)
    return ChunkedLogProbFunction.apply(hidden, head.weight, bias, targets, 1.0, VOCAB_TILE, None, 1.0, outputs)
