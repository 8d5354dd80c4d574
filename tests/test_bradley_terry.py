"""Bradley-Terry ratings: recover known strengths, respect symmetry, honest intervals, a printable leaderboard."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparta.tournament.bradley_terry import (
    ELO_PER_NAT,
    bootstrap_intervals,
    bradley_terry,
    leaderboard_rows,
    record,
)

MEMBERS = [f"m{i}" for i in range(6)]
STRENGTHS = np.linspace(-1.5, 1.5, len(MEMBERS))  # natural-log scale; 0.6 nats = 104 Elo apart


def simulate(n_games: int, seed: int = 0, tie_share: float = 0.0) -> list[tuple[str, str, float]]:
    """Random pairings; a beats b with the Bradley-Terry probability of the true strengths."""
    rng = np.random.default_rng(seed)
    games = []
    for _ in range(n_games):
        i, j = rng.choice(len(MEMBERS), size=2, replace=False)
        if rng.random() < tie_share:
            games.append((MEMBERS[i], MEMBERS[j], 0.5))
            continue
        p = 1.0 / (1.0 + math.exp(-(STRENGTHS[i] - STRENGTHS[j])))
        games.append((MEMBERS[i], MEMBERS[j], float(rng.random() < p)))
    return games


def test_recovers_the_order_and_gaps_of_known_strengths():
    ratings = bradley_terry(simulate(6000, seed=1), MEMBERS)
    assert sorted(MEMBERS, key=ratings.get) == MEMBERS
    assert np.mean(list(ratings.values())) == pytest.approx(1000.0)
    truth = 1000.0 + ELO_PER_NAT * (STRENGTHS - STRENGTHS.mean())
    assert np.abs(np.array([ratings[m] for m in MEMBERS]) - truth).max() < 40.0


def test_a_400_point_gap_means_ten_to_one_odds():
    ratings = bradley_terry([("a", "b", 1.0)] * 1000 + [("a", "b", 0.0)] * 100, ["a", "b"], prior=0.0)
    assert ratings["a"] - ratings["b"] == pytest.approx(400.0, abs=0.5)


def test_symmetric_results_give_equal_ratings():
    round_robin = [(a, b, r) for a in MEMBERS for b in MEMBERS if a != b for r in (1.0, 0.0)]
    assert all(v == pytest.approx(1000.0, abs=1e-6) for v in bradley_terry(round_robin, MEMBERS).values())
    ties = [(a, b, 0.5) for a in MEMBERS for b in MEMBERS if a < b]
    assert all(v == pytest.approx(1000.0, abs=1e-6) for v in bradley_terry(ties, MEMBERS).values())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from([0.0, 0.25, 0.5, 1.0])), max_size=30))
def test_swapping_sides_changes_nothing(raw):
    names = ["a", "b", "c", "d"]
    games = [(names[i], names[j], r) for i, j, r in raw if i != j]
    swapped = [(b, a, 1.0 - r) for a, b, r in games]
    left, right = bradley_terry(games, names), bradley_terry(swapped, names)
    assert all(math.isfinite(left[n]) and left[n] == pytest.approx(right[n], abs=1e-4) for n in names)


def test_undefeated_and_unplayed_members_stay_finite():
    ratings = bradley_terry([("a", "b", 1.0)] * 50, ["a", "b", "c"])
    assert math.isfinite(ratings["a"]) and ratings["a"] > 1300 > 700 > ratings["b"]
    assert ratings["c"] == pytest.approx(1000.0)
    assert bradley_terry([], ["a", "b"]) == {"a": 1000.0, "b": 1000.0}


def test_intervals_contain_the_estimate_and_shrink_with_more_data():
    small, large = simulate(400, seed=2), simulate(3200, seed=2)
    widths = []
    for games in (small, large):
        ratings = bradley_terry(games, MEMBERS)
        ci = bootstrap_intervals(games, MEMBERS, n_boot=150, seed=0)
        assert all(ci[m][0] <= ratings[m] <= ci[m][1] for m in MEMBERS)
        widths.append(np.mean([ci[m][1] - ci[m][0] for m in MEMBERS]))
    assert widths[1] < 0.6 * widths[0]  # eight times the games: about 1/sqrt(8) = 0.35 of the width
    again = [bootstrap_intervals(small, MEMBERS, n_boot=50, seed=4) for _ in range(2)]
    assert again[0] == again[1]


def test_leaderboard_rows_sorted_with_records():
    games = simulate(600, seed=3, tie_share=0.1)
    reputation = {m: 100.0 + i for i, m in enumerate(MEMBERS)}
    rows = leaderboard_rows(reputation, games, MEMBERS, n_boot=40)
    assert [r["rank"] for r in rows] == list(range(1, len(MEMBERS) + 1))
    assert [r["bt"] for r in rows] == sorted((r["bt"] for r in rows), reverse=True)
    assert set(rows[0]) == {"rank", "member", "reputation", "bt", "bt_low", "bt_high", "wins", "losses", "ties"}
    for row in rows:
        assert row["reputation"] == reputation[row["member"]]
        assert row["bt_low"] <= row["bt_high"]
        played = sum(row["member"] in (a, b) for a, b, _ in games)
        assert row["wins"] + row["losses"] + row["ties"] == played
    assert sum(r["wins"] for r in rows) == sum(r["losses"] for r in rows)
    assert sum(r["ties"] for r in rows) == 2 * sum(r == 0.5 for _, _, r in games) > 0
    quick = leaderboard_rows(reputation, games, MEMBERS, n_boot=0)
    assert all(r["bt_low"] is None and r["bt_high"] is None for r in quick)


def test_record_counts_shares_by_majority():
    tally = record([("a", "b", 0.75), ("b", "a", 0.5), ("a", "b", 0.0)], ["a", "b"])
    assert tally == {"a": {"wins": 1, "losses": 1, "ties": 1}, "b": {"wins": 1, "losses": 1, "ties": 1}}


@pytest.mark.parametrize(
    "games, message",
    [
        ([("a", "x", 1.0)], "outcome 0 .*'x' is not one of the members"),
        ([("a", "b", 1.0), ("a", "b", 1.5)], "outcome 1 .*result 1.5"),
        ([("a", "a", 1.0)], "outcome 0: 'a' plays itself"),
    ],
)
def test_bad_outcomes_are_named(games, message):
    with pytest.raises(ValueError, match=message):
        bradley_terry(games, ["a", "b"])


def test_leaderboard_needs_every_reputation():
    with pytest.raises(ValueError, match=r"no rating for members \['b'\]"):
        leaderboard_rows({"a": 100.0}, [("a", "b", 1.0)], ["a", "b"], n_boot=0)


def test_the_module_does_not_import_torch():
    code = "import sys, sparta.tournament.bradley_terry; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
