"""The reputation update: hand-computed examples and properties that must hold for any input."""

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparta.config import TournamentConfig
from sparta.tournament.reputation import ReputationState, deviation, kappa, normal_cdf, population_sd, update_pair

CFG = TournamentConfig()
KAPPA_AFTER = TournamentConfig(kappa_counter="advance_after")
"""The former order: kappa from the pairs rated before this one (the first pair gets kappa0)."""


def _three_far_apart() -> ReputationState:
    """Ratings 30 points apart with fresh sigmas: every |Phi(z) - Phi(-z)| is 1.0 to double precision."""
    return ReputationState(
        ratings={"a": 130.0, "b": 100.0, "c": 70.0},
        sigmas={"a": 0.5, "b": 0.5, "c": 0.5},
        history={"a": [], "b": [], "c": []},
    )


def test_first_three_pairs_by_hand_in_the_authors_order():
    # kappa_n = 10 * 0.9 ** (n / 10) for the n-th pair, n = 1, 2, 3 (the counter advances first):
    #   9.895192582, 9.791483624, 9.688861612.  tanh(0.5) = 0.4621171573; factor 1; scale 20.
    # pair 1, a beats b 8-6:  +-9.895192582 * 2 * 0.4621171573 / 20 = +-0.4572738267
    # pair 2, c beats b 9-3:  +-9.791483624 * 6 * 0.4621171573 / 20 = +-1.3574437733
    # pair 3, a beats c 7-5:  +-9.688861612 * 2 * 0.4621171573 / 20 = +-0.4477389185
    # every combatant has had at most one change before its pair, so every pair uses sigma 0.5.
    state = _three_far_apart()
    assert update_pair(state, "a", "b", 8.0, 6.0, CFG) == pytest.approx((0.4572738267, -0.4572738267))
    assert update_pair(state, "b", "c", 3.0, 9.0, CFG) == pytest.approx((-1.3574437733, 1.3574437733))
    assert update_pair(state, "c", "a", 5.0, 7.0, CFG) == pytest.approx((-0.4477389185, 0.4477389185))
    assert state.updates == 3
    assert state.ratings == pytest.approx({"a": 130.9050127452, "b": 98.1852824001, "c": 70.9097048547})
    # sigma = population sd of the two changes: b |(-0.4573) - (-1.3574)| / 2, c |1.3574 - (-0.4477)| / 2;
    # a's two changes are nearly equal, so its sd (0.0048) is floored at sigma_min 0.1.
    assert state.sigmas == pytest.approx({"a": 0.1, "b": 0.4500849733, "c": 0.9025913459})


def test_first_three_pairs_by_hand_with_kappa_counted_after():
    # kappa 10, 9.895192582, 9.791483624: the first pair gets kappa0 itself.
    state = _three_far_apart()
    assert update_pair(state, "a", "b", 8.0, 6.0, KAPPA_AFTER) == pytest.approx((0.4621171573, -0.4621171573))
    assert update_pair(state, "b", "c", 3.0, 9.0, KAPPA_AFTER) == pytest.approx((-1.3718214800, 1.3718214800))
    assert update_pair(state, "c", "a", 5.0, 7.0, KAPPA_AFTER) == pytest.approx((-0.4524812578, 0.4524812578))
    assert state.updates == 3
    assert state.ratings == pytest.approx({"a": 130.9145984150, "b": 98.1660613628, "c": 70.9193402222})


def test_first_pair_by_hand():
    # Ratings 120 vs 100, fresh sigmas 0.5: z = 20 / sqrt(0.5) = 28.28, |Phi(z) - Phi(-z)| = 1 (to double precision).
    state = ReputationState(
        ratings={"a": 120.0, "b": 100.0, "c": 100.0},
        sigmas={"a": 0.5, "b": 0.5, "c": 0.5},
        history={"a": [], "b": [], "c": []},
    )
    d_a, d_b = update_pair(state, "a", "b", 8.0, 6.0, KAPPA_AFTER)
    step = 10 * 2.0 * math.tanh(0.5) * 1.0 / 20  # kappa0 * diff * tanh(sigma) * factor / scale
    assert d_a == pytest.approx(step)
    # b sees a's new rating: z is even larger, factor still 1; diff is -2.
    assert d_b == pytest.approx(-step)
    assert state.ratings == {"a": pytest.approx(120 + step), "b": pytest.approx(100 - step), "c": 100.0}
    assert state.updates == 1
    # one change each: sigma stays at its initial value until two changes exist
    assert state.sigmas["a"] == 0.5 and state.history["a"] == [pytest.approx(step)]


def test_equal_ratings_use_the_eps_floor():
    state = ReputationState.initial(["a", "b"], CFG)
    d_a, _ = update_pair(state, "a", "b", 9.0, 3.0, KAPPA_AFTER)
    assert d_a == pytest.approx(10 * 6.0 * math.tanh(0.5) * 0.01 / 20)


def test_second_combatant_sees_the_new_rating():
    # close ratings, so the factor depends on the gap: b's z uses a's *new* rating
    state = ReputationState(ratings={"a": 100.3, "b": 100.0}, sigmas={"a": 0.5, "b": 0.5}, history={"a": [], "b": []})
    _, d_b = update_pair(state, "a", "b", 10.0, 1.0, KAPPA_AFTER)
    new_a = state.ratings["a"]
    z = (100.0 - new_a) / math.sqrt(0.5)
    factor = max(abs(normal_cdf(z) - normal_cdf(-z)), 0.01)
    assert d_b == pytest.approx(10 * -9.0 * math.tanh(0.5) * factor / 20)


def test_kappa_decays_and_floors():
    assert kappa(0, CFG) == 10.0
    assert kappa(10, CFG) == pytest.approx(9.0)
    assert kappa(20, CFG) == pytest.approx(8.1)
    assert kappa(10_000, CFG) == 5.0


def test_sigma_is_population_sd_of_window():
    changes = [1.0, 3.0]
    assert deviation(changes, CFG) == pytest.approx(1.0)
    assert deviation([0.0] * 5, CFG) == CFG.sigma_min
    long = list(range(30))
    assert deviation(long, CFG) == pytest.approx(deviation(long[-10:], CFG))


def test_history_keeps_the_window_across_updates():
    state = ReputationState.initial(["a", "b"], CFG)
    for _ in range(25):
        update_pair(state, "a", "b", 7.0, 4.0, CFG)
    assert len(state.history["a"]) == CFG.window
    assert state.updates == 25


def test_rating_floor():
    cfg = TournamentConfig(rating_floor=10.0, scale=0.001)
    state = ReputationState(ratings={"a": 11.0, "b": 200.0}, sigmas={"a": 3.0, "b": 3.0}, history={"a": [], "b": []})
    update_pair(state, "a", "b", 1.0, 10.0, cfg)
    assert state.ratings["a"] == 10.0


def test_upset_aware_rewards_beating_a_stronger_opponent():
    cfg = TournamentConfig(update_rule="upset_aware")

    def gain(r_self, r_opp):
        state = ReputationState(
            ratings={"a": r_self, "b": r_opp}, sigmas={"a": 0.5, "b": 0.5}, history={"a": [], "b": []}
        )
        return update_pair(state, "a", "b", 8.0, 6.0, cfg)[0]

    assert gain(100.0, 101.0) > gain(100.0, 100.0) > gain(100.0, 99.0) > 0
    # the paper rule is symmetric: the same gain either way
    paper = TournamentConfig()

    def paper_gain(r_self, r_opp):
        state = ReputationState(
            ratings={"a": r_self, "b": r_opp}, sigmas={"a": 0.5, "b": 0.5}, history={"a": [], "b": []}
        )
        return update_pair(state, "a", "b", 8.0, 6.0, paper)[0]

    assert paper_gain(100.0, 101.0) == pytest.approx(paper_gain(100.0, 99.0))


ratings = st.floats(min_value=10.0, max_value=1000.0, allow_nan=False)
scores = st.floats(min_value=1.0, max_value=10.0, allow_nan=False)
sigmas = st.floats(min_value=0.1, max_value=20.0, allow_nan=False)
configs = st.builds(
    TournamentConfig,
    update_rule=st.sampled_from(["paper", "upset_aware"]),
    kappa0=st.floats(5.0, 50.0),
    decay=st.floats(0.5, 1.0),
    scale=st.floats(0.5, 100.0),
)


@settings(max_examples=300, deadline=None)
@given(ra=ratings, rb=ratings, sa=scores, sb=scores, sig_a=sigmas, sig_b=sigmas, cfg=configs)
def test_update_properties(ra, rb, sa, sb, sig_a, sig_b, cfg):
    state = ReputationState(ratings={"a": ra, "b": rb}, sigmas={"a": sig_a, "b": sig_b}, history={"a": [], "b": []})
    d_a, d_b = update_pair(state, "a", "b", sa, sb, cfg)
    if sa == sb:
        assert d_a == 0 and d_b == 0
    elif sa > sb:
        assert d_a >= 0 and d_b <= 0
    else:
        assert d_a <= 0 and d_b >= 0
    assert min(state.ratings.values()) >= cfg.rating_floor
    assert min(state.sigmas.values()) >= cfg.sigma_min


@settings(max_examples=50, deadline=None)
@given(
    games=st.lists(st.tuples(scores, scores), min_size=1, max_size=60),
    cfg=configs,
)
def test_sequences_keep_floors_and_kappa_never_rises(games, cfg):
    state = ReputationState.initial(["a", "b", "c"], cfg)
    last_kappa = kappa(0, cfg)
    for i, (sa, sb) in enumerate(games):
        a, b = [("a", "b"), ("b", "c"), ("c", "a")][i % 3]
        update_pair(state, a, b, sa, sb, cfg)
        k = kappa(state.updates, cfg)
        assert k <= last_kappa
        last_kappa = k
        assert all(s >= cfg.sigma_min for s in state.sigmas.values())
        assert all(r >= cfg.rating_floor for r in state.ratings.values())


def test_state_round_trip():
    state = ReputationState.initial(["a", "b", "c"], CFG)
    update_pair(state, "a", "b", 7.25, 3.5, CFG)
    update_pair(state, "c", "a", 1.0 / 3.0, 9.0, CFG)
    again = ReputationState.from_dict(__import__("json").loads(__import__("json").dumps(state.to_dict())))
    assert again == state


@settings(max_examples=400)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
            st.floats(min_value=-1e-300, max_value=1e-300),  # subnormals and their neighbours
            st.sampled_from([0.0, -0.0, 0.1, 1e-3, -2.5]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_population_sd_is_statistics_pstdev_bit_for_bit(values):
    assert population_sd(values) == statistics.pstdev(values)


def test_population_sd_by_hand():
    assert population_sd([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == 2.0
    assert population_sd([1.0, 1.0]) == 0.0
    assert population_sd([0.0, 1.0]) == 0.5
