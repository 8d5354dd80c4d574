"""Aggregation of judges' scores: worked examples by hand."""

import pytest

from sparta.tournament.aggregation import aggregate


def test_reputation_weighted_by_hand():
    ratings = {"j1": 100.0, "j2": 300.0}
    # (100 * 4 + 300 * 8) / 400 = 7
    assert aggregate("reputation", [("j1", 4.0), ("j2", 8.0)], ratings) == pytest.approx(7.0)
    assert aggregate("uniform", [("j1", 4.0), ("j2", 8.0)], ratings) == pytest.approx(6.0)


def test_failed_judgments_are_excluded_not_defaulted():
    ratings = {"j1": 100.0, "j2": 300.0, "j3": 50.0}
    assert aggregate("reputation", [("j1", 2.0), ("j2", None), ("j3", 8.0)], ratings) == pytest.approx(
        (100 * 2 + 50 * 8) / 150
    )
    assert aggregate("reputation", [("j1", None)], ratings) is None
    assert aggregate("uniform", [], ratings) is None


def test_unknown_method_names_the_choices():
    with pytest.raises(KeyError, match="reputation"):
        aggregate("median", [("j1", 1.0)], {"j1": 1.0})
