"""Paired statistics of two rounds on the same items: hand-computed cases, properties, and eval.json's paired part."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparta.evaluation.bootstrap import bootstrap_mean
from sparta.evaluation.paired import discordant, mcnemar_exact, paired_difference, paired_scores
from sparta.evaluation.results import results_from
from sparta.evaluation.summary import summarise
from sparta.evaluation.table import format_change, paired_table_rows

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
bits = st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=40)


# -- the pure functions, by hand --------------------------------------------------------------------------------
def test_paired_difference_by_hand():
    before, after = [1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]  # differences 0, 1, 1, -1
    interval = paired_difference(before, after, seed=3)
    assert interval.score == pytest.approx(0.25) and interval.n == 4
    assert -1.0 <= interval.low <= 0.25 <= interval.high <= 1.0
    assert paired_difference(before, after, seed=3) == interval  # seeded
    assert paired_difference([], [], seed=3).score is None
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0], [1.0, 0.0], seed=3)


def test_only_items_scored_in_both_rounds_are_paired():
    before, after = {"a": 1.0, "b": 0.0, "c": 1.0}, {"c": 0.0, "a": 1.0, "d": 1.0}
    assert paired_scores(before, after) == ([1.0, 1.0], [1.0, 0.0])  # a, c in before's order


def test_mcnemar_exact_by_hand():
    # 6 gained, 1 lost: P(X >= 6 | Binomial(7, 1/2)) = (7 + 1) / 128, doubled for two sides
    assert mcnemar_exact(6, 1) == pytest.approx(16 / 128)
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(2, 2) == pytest.approx(1.0)
    assert mcnemar_exact(0, 0) == 1.0
    assert discordant([0.0, 0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0, 0.0]) == (2, 1)
    with pytest.raises(ValueError, match="scores of 0 or 1"):
        discordant([0.5], [1.0])


def test_pairing_sees_a_change_that_two_separate_intervals_hide():
    before = [k / 20 for k in range(20)]
    after = [x + 0.05 for x in before]  # every item gains 0.05
    first, last = bootstrap_mean(before, seed=1), bootstrap_mean(after, seed=2)
    assert first.high > last.low  # the two rounds' intervals overlap widely
    paired = paired_difference(before, after, seed=3)
    assert paired.low == pytest.approx(0.05) and paired.high == pytest.approx(0.05)


# -- properties -------------------------------------------------------------------------------------------------
@given(st.lists(unit, min_size=1, max_size=30), st.integers(0, 2**32))
def test_identical_samples_differ_by_zero_with_a_degenerate_interval(values, seed):
    interval = paired_difference(values, list(values), seed)
    assert (interval.score, interval.low, interval.high, interval.n) == (0.0, 0.0, 0.0, len(values))


@given(st.lists(st.tuples(unit, unit), min_size=1, max_size=30), st.integers(0, 2**32))
def test_the_difference_is_the_difference_of_the_means_and_lies_in_its_interval_range(pairs, seed):
    before, after = [b for b, _ in pairs], [a for _, a in pairs]
    interval = paired_difference(before, after, seed)
    assert interval.score == pytest.approx(sum(after) / len(after) - sum(before) / len(before), abs=1e-12)
    diffs = [a - b for b, a in pairs]
    assert min(diffs) - 1e-12 <= interval.low <= interval.high <= max(diffs) + 1e-12


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_is_symmetric_and_a_probability(gained, lost):
    p_value = mcnemar_exact(gained, lost)
    assert p_value == mcnemar_exact(lost, gained)
    assert 0.0 < p_value <= 1.0
    if gained == lost:
        assert p_value == pytest.approx(1.0)


@given(
    bits.flatmap(
        lambda b: st.tuples(st.just(b), st.lists(st.sampled_from([0.0, 1.0]), min_size=len(b), max_size=len(b)))
    )
)
def test_discordant_counts_add_up_to_the_difference(pair):
    before, after = pair
    gained, lost = discordant(before, after)
    assert gained - lost == round(sum(after) - sum(before))
    assert discordant(after, before) == (lost, gained)


# -- eval.json's paired part, by hand ---------------------------------------------------------------------------
def _rows(scores: dict[str, float | None]) -> list[dict]:
    return [{"instruction_id": item, "score": score} for item, score in scores.items()]


ROWS = {
    (0, "t", "A"): _rows({"i1": 1.0, "i2": 0.0, "i3": 0.0, "i4": 0.0, "i5": 1.0}),  # 0.4
    (0, "t", "B"): _rows({"i1": 0.0, "i2": 0.0, "i3": 1.0, "i4": 1.0, "i5": 1.0}),  # 0.6: best at round 0
    (2, "t", "A"): _rows({"i1": 1.0, "i2": 1.0, "i3": 1.0, "i4": 1.0, "i5": None}),  # 1.0: best at round 2
    (2, "t", "B"): _rows({"i1": 0.0, "i2": 0.0, "i3": 1.0, "i4": 0.0, "i5": 1.0}),  # 0.4
}


def test_paired_changes_of_members_pool_mean_and_best_member_by_hand():
    results = summarise(ROWS, [0, 2], ["t"], ["A", "B"], seed=0, binary={"t"})
    assert list(results.paired) == [2]  # the baseline round is not paired with itself
    change = results.paired[2]["t"]
    assert change.baseline == 0
    a, b = change.members["A"], change.members["B"]
    # A: i5 has no score at round 2, so 4 pairs: 0, +1, +1, +1
    assert (a.diff, a.n, a.gained, a.lost) == (pytest.approx(0.75), 4, 3, 0)
    assert a.p_value == pytest.approx(2 / 8)
    # B: 0, 0, 0, -1, 0
    assert (b.diff, b.n, b.gained, b.lost, b.p_value) == (pytest.approx(-0.2), 5, 0, 1, pytest.approx(1.0))
    # pool mean per item, round 0: .5 0 .5 .5 1 -> round 2: .5 .5 1 .5 1 (i5: B alone); no McNemar on means
    mean = change.mean
    assert (mean.diff, mean.n, mean.p_value) == (pytest.approx(0.2), 5, None)
    # best: B at round 0, A at round 2, paired on the items both have: A after - B before = 1, 1, 0, 0
    best = change.best
    assert (best.baseline_member, best.member, best.diff, best.n) == ("B", "A", pytest.approx(0.5), 4)
    assert (best.gained, best.lost, best.p_value) == (2, 0, pytest.approx(0.5))
    for entry in (a, b, mean, best):
        assert entry.low <= entry.diff <= entry.high


def test_scores_that_are_not_0_or_1_get_no_mcnemar():
    change = summarise(ROWS, [0, 2], ["t"], ["A", "B"], seed=0).paired[2]["t"]
    assert change.members["A"].diff == pytest.approx(0.75)
    assert all(c.p_value is None and c.gained is None for c in (*change.members.values(), change.mean, change.best))


def test_paired_statistics_survive_the_file_and_reach_the_table():
    results = summarise(ROWS, [0, 2], ["t"], ["A", "B"], seed=0, binary={"t"})
    assert results_from(json.loads(json.dumps(results.model_dump(mode="json")))) == results
    rows = {row["member"]: row for row in paired_table_rows(results)}
    assert list(rows) == ["A", "B", "best member", "pool mean"] and rows["A"]["rounds"] == "0 -> 2"
    assert rows["A"]["t"] == format_change(results.paired[2]["t"].members["A"])
    assert rows["A"]["t"].startswith("+0.75 [") and rows["A"]["t"].endswith("p=0.25 (+3/-0)")
    assert rows["best member"]["t"].startswith("B->A +0.50")
    assert rows["pool mean"]["t"].startswith("+0.20 [") and "p=" not in rows["pool mean"]["t"]
    assert format_change(None) == "-"
