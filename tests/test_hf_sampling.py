"""Per-row sampling: greedy is argmax, a sampled token lies in its row's nucleus, the inverse CDF follows the
renormalised nucleus, and no row depends on the others or on how its nucleus was found."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import sparta.backends.hf.sampling as sampling  # noqa: E402
from sparta.backends.hf.sampling import next_tokens, uniform_draws  # noqa: E402

rows_strategy = st.integers(1, 6)


def _batch(seed: int, rows: int, vocab: int, spread: float) -> torch.Tensor:
    return torch.randn((rows, vocab), generator=torch.Generator().manual_seed(seed)) * spread


def _settings(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    temperature = torch.rand(rows, generator=generator) * 1.5
    temperature[torch.rand(rows, generator=generator) < 0.3] = 0.0  # some rows greedy
    top_p = torch.rand(rows, generator=generator, dtype=torch.float64).clamp(min=0.05)
    top_p[torch.rand(rows, generator=generator) < 0.3] = 1.0  # some rows without a nucleus
    return temperature, top_p, torch.rand(rows, generator=generator, dtype=torch.float64)


def _nucleus(logits: torch.Tensor, temperature: float, top_p: float) -> set[int]:
    """The smallest set of most likely tokens whose mass reaches top_p (plain Python over a sorted list)."""
    probs = torch.softmax(logits.double() / temperature, dim=-1).tolist()
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        if mass >= top_p - 1e-9 and kept:
            break
        kept.add(i)
        mass += probs[i]
    return kept


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), rows=rows_strategy, vocab=st.integers(2, 700), spread=st.floats(0.1, 8.0))
def test_each_token_is_greedy_or_inside_its_rows_nucleus(seed, rows, vocab, spread):
    logits = _batch(seed, rows, vocab, spread)
    temperature, top_p, u = _settings(rows, seed)
    tokens = next_tokens(logits, temperature, top_p, u)
    for row in range(rows):
        if temperature[row] == 0:
            assert tokens[row] == logits[row].argmax()
        else:
            assert int(tokens[row]) in _nucleus(logits[row], float(temperature[row]), float(top_p[row]))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 6), vocab=st.integers(2, 700), spread=st.floats(0.1, 8.0))
def test_a_row_does_not_depend_on_the_other_rows(seed, rows, vocab, spread):
    logits = _batch(seed, rows, vocab, spread)
    temperature, top_p, u = _settings(rows, seed)
    together = next_tokens(logits, temperature, top_p, u)
    for row in range(rows):
        alone = next_tokens(logits[row : row + 1], temperature[row : row + 1], top_p[row : row + 1], u[row : row + 1])
        assert alone.item() == together[row].item()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=rows_strategy, vocab=st.integers(300, 700), spread=st.floats(0.1, 8.0))
def test_topk_shortcut_and_full_sort_pick_the_same_token(seed, rows, vocab, spread):
    logits = _batch(seed, rows, vocab, spread)
    temperature, top_p, u = _settings(rows, seed)
    temperature = temperature.clamp(min=0.2)
    original = sampling.TOP_K_FIRST
    try:
        sampling.TOP_K_FIRST = 4  # the nucleus mostly reaches beyond 4 candidates: the full sort runs
        small = next_tokens(logits, temperature, top_p, u)
        sampling.TOP_K_FIRST = vocab  # every row found among the candidates
        large = next_tokens(logits, temperature, top_p, u)
    finally:
        sampling.TOP_K_FIRST = original
    assert torch.equal(small, large)


@pytest.mark.parametrize("top_p", [1.0, 0.9, 0.5])
def test_inverse_cdf_follows_the_renormalised_nucleus(top_p):
    """Evenly spaced draws land on each kept token in proportion to its renormalised probability."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    draws = 20_000
    u = (torch.arange(draws, dtype=torch.float64) + 0.5) / draws
    tokens = next_tokens(logits.expand(draws, -1), torch.full((draws,), 0.8), torch.full((draws,), top_p), u)
    kept = sorted(_nucleus(logits[0], 0.8, top_p))
    probs = torch.softmax(logits[0].double() / 0.8, dim=-1)
    expected = {i: float(probs[i] / probs[kept].sum()) for i in kept}
    counts = torch.bincount(tokens, minlength=6)
    for token in range(6):
        assert counts[token].item() / draws == pytest.approx(expected.get(token, 0.0), abs=2 / draws)


def test_uniform_draws_depend_on_their_own_seed_only():
    alone = uniform_draws([11], 5)
    mixed = uniform_draws([7, 11, 3], 5)
    assert torch.equal(alone[0], mixed[1])
    assert not torch.equal(mixed[0], mixed[1])
    assert float(mixed.min()) >= 0.0 and float(mixed.max()) < 1.0
