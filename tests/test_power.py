"""The exact power of McNemar's test: its rejection region, hand-checked values, a simulation, monotonicity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from sparta.evaluation.paired import mcnemar_exact
from sparta.evaluation.power import detectable_difference, discordance_rate, mcnemar_power, rejection_bounds


def test_rejection_region_is_where_the_exact_test_rejects():
    bounds = rejection_bounds(40, 0.05)
    for discordant in range(41):
        for gained in range(discordant + 1):
            rejects = mcnemar_exact(gained, discordant - gained) <= 0.05
            in_region = gained <= bounds[discordant] or gained >= discordant - bounds[discordant]
            assert rejects == (bounds[discordant] >= 0 and in_region), (discordant, gained)
    # by hand: with 5 discordant items even 5 to 0 gives p = 2/32 = 0.0625 > 0.05; with 6, 6 to 0 gives 2/64
    assert bounds[5] == -1 and bounds[6] == 0 and binomtest(0, 6, 0.5).pvalue == pytest.approx(2 / 64)


def test_power_by_hand_for_two_items():
    # N = 2, d = 1: both items discordant; with 2 trials no outcome reaches p <= 0.05, so nothing is detectable
    assert mcnemar_power(2, 1.0, 1.0) == 0.0
    # N = 6, d = 1, difference = 1: every item gained, p = 2/64 -> always rejected
    assert mcnemar_power(6, 1.0, 1.0) == pytest.approx(1.0)
    # N = 6, d = 1, difference = 0: rejects at 0 or 6 gained, probability 2/64 (the test's true size)
    assert mcnemar_power(6, 1.0, 0.0) == pytest.approx(2 / 64)


def test_power_agrees_with_a_simulation():
    rng = np.random.default_rng(0)
    n_items, discordance, difference = 60, 0.3, 0.15
    gained_p, lost_p = (discordance + difference) / 2, (discordance - difference) / 2
    draws = rng.multinomial(n_items, [gained_p, lost_p, 1 - discordance], size=4000)
    rejected = np.mean([mcnemar_exact(int(g), int(c)) <= 0.05 for g, c, _ in draws])
    assert mcnemar_power(n_items, discordance, difference) == pytest.approx(rejected, abs=0.025)


@settings(max_examples=40, deadline=None)
@given(st.integers(10, 120), st.floats(0.05, 0.6), st.floats(0.0, 1.0))
def test_power_grows_with_the_difference_and_the_items(n_items, discordance, share):
    difference = share * discordance
    power = mcnemar_power(n_items, discordance, difference)
    assert 0.0 <= power <= 1.0
    assert mcnemar_power(n_items, discordance, min(discordance, difference + 0.05)) >= power - 1e-12
    assert mcnemar_power(n_items, discordance, -difference) == pytest.approx(power)  # two-sided: symmetric
    # four times the items at the same rates and difference: more discordant items, more power (away from 0)
    if power > 0.05:
        assert mcnemar_power(4 * n_items, discordance, difference) >= power


def test_detectable_difference_reaches_the_power_and_one_step_less_does_not():
    found = detectable_difference(200, 0.2)
    assert found == pytest.approx(0.092, abs=0.002)  # normal approximation: 2.80 x sqrt(0.2 / 200) = 0.089
    assert mcnemar_power(200, 0.2, found) >= 0.8 > mcnemar_power(200, 0.2, found - 0.001)
    assert detectable_difference(200, 0.01) is None  # 2 discordant items on average: no test can reject
    with pytest.raises(ValueError, match="difference"):
        mcnemar_power(100, 0.1, 0.2)


def test_discordance_rate():
    assert discordance_rate([True, False, True, True], [True, True, False, True]) == 0.5
    with pytest.raises(ValueError, match="same items"):
        discordance_rate([True], [True, False])
