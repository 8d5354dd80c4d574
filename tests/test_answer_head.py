"""The DPO step's output head on a CPU: TRL's fused kernel's numbers and gradients, with the probabilities kept."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from trl.kernels import ChunkedLogProbFunction  # noqa: E402

from sparta.backends.hf import answer_head  # noqa: E402
from sparta.backends.hf.answer_head import KeptProbabilities, answer_token_outputs, keeps_probabilities  # noqa: E402

ALL = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


def _inputs(rows: int, vocab: int, hidden: int, seed: int, ties: bool = False):
    generator = torch.Generator().manual_seed(seed)
    states = (torch.randn(rows, hidden, generator=generator) * 2).requires_grad_()
    weight = torch.randn(vocab, hidden, generator=generator)
    if ties:  # every even token has the same logits as the one after it: argmax ties
        weight[1::2] = weight[0 : vocab - vocab % 2 : 2][: weight[1::2].shape[0]]
    targets = torch.randint(0, vocab, (rows,), generator=generator)
    return states, weight, targets


def _trl(states, weight, targets, outputs, tile: int):
    return ChunkedLogProbFunction.apply(states, weight, None, targets, 1.0, tile, None, 1.0, outputs)


def _loss(values, generator_seed: int) -> torch.Tensor:
    """A loss weighting log-probabilities and entropy differently per row: both gradients are exercised."""
    log_probs, entropy = values[0], values[1]
    generator = torch.Generator().manual_seed(generator_seed)
    weights = torch.randn(2, log_probs.shape[0], generator=generator)
    return (weights[0] * log_probs).sum() + (weights[1] * entropy).sum()


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 40),
    vocab=st.integers(2, 300),
    hidden=st.integers(1, 24),
    tile=st.integers(1, 64),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
)
def test_kept_probabilities_give_trls_numbers_and_gradients(rows, vocab, hidden, tile, seed, ties):
    states, weight, targets = _inputs(rows, vocab, hidden, seed, ties)
    ours = KeptProbabilities.apply(states, weight, targets, ALL)
    (grad_ours,) = torch.autograd.grad(_loss(ours, seed), states)
    theirs = _trl(states, weight, targets, ALL, tile)
    (grad_theirs,) = torch.autograd.grad(_loss(theirs, seed), states)
    logits = states.detach() @ weight.T
    scale = max(1.0, float(logits.abs().max()))  # log-sum-exp minus a logit: rounding scales with the logits
    for name, a, b in zip(ALL, ours, theirs):
        if name == "is_top1":  # compared where rounding cannot decide it: the target is not within 1e-4 of a rival
            target = logits.gather(1, targets.unsqueeze(1))
            rival = logits.scatter(1, targets.unsqueeze(1), -torch.inf).amax(1, keepdim=True)
            clear = ((target - rival).abs() > 1e-4)[:, 0]
            assert torch.equal(a[clear], b[clear]), name
        else:
            assert (a - b).abs().max() <= 1e-5 * scale, name
    assert (grad_ours - grad_theirs).abs().max() <= 1e-5 * scale * max(1.0, float(grad_theirs.abs().max()))


def test_only_the_log_probabilities_when_nothing_else_is_asked():
    states, weight, targets = _inputs(5, 50, 8, 0)
    values = KeptProbabilities.apply(states, weight, targets, ("log_probs",))
    assert values[0].shape == (5,) and all(v is None for v in values[1:])
    (grad,) = torch.autograd.grad(values[0].sum(), states)
    expected = torch.softmax(states.detach() @ weight.T, -1)
    # d sum log p(target) / d states = (onehot - p) @ weight
    onehot = torch.nn.functional.one_hot(targets, 50).float()
    assert torch.allclose(grad, (onehot - expected) @ weight, atol=1e-5)


@pytest.fixture
def trl_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = ChunkedLogProbFunction.apply

    def counted(*args):
        calls.append(args[0].shape[0])
        return real(*args)

    monkeypatch.setattr(ChunkedLogProbFunction, "apply", counted)
    return calls


def test_the_kept_probabilities_serve_a_frozen_float32_head_on_a_cpu(trl_calls):
    states, weight, targets = _inputs(6, 40, 8, 1)
    head = torch.nn.Linear(8, 40, bias=False).requires_grad_(False)
    head.weight.copy_(weight)
    assert keeps_probabilities(states, head)
    answer_token_outputs(states, head, targets, ALL)
    assert trl_calls == []


@pytest.mark.parametrize("case", ["bias", "trained head", "bfloat16", "autocast", "too large"])
def test_anything_else_goes_to_trls_kernel(trl_calls, monkeypatch, case):
    states, weight, targets = _inputs(6, 40, 8, 2)
    head = torch.nn.Linear(8, 40, bias=case == "bias").requires_grad_(case == "trained head")
    with torch.no_grad():
        head.weight.copy_(weight)
    if case == "bfloat16":
        head, states = head.to(torch.bfloat16), states.detach().to(torch.bfloat16).requires_grad_()
    if case == "too large":
        monkeypatch.setattr(answer_head, "MAX_KEPT_BYTES", 6 * 40 * 4 - 1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "autocast"):
        assert not keeps_probabilities(states, head)
        answer_token_outputs(states, head, targets, ALL)
    assert trl_calls == [6]
