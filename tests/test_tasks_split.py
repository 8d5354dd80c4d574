"""Hold-out splits by id hash, and per-round draws that differ from round to round."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparta.records import Instruction
from sparta.tasks import draw_round, procedural_instructions, round_seed, split_holdout


def make(n: int, prefix: str = "t") -> list[Instruction]:
    return [Instruction(f"{prefix}-{i:05d}", f"prompt {i}") for i in range(n)]


ids = st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=60)


@settings(max_examples=50, deadline=None)
@given(ids=ids, fraction=st.floats(0, 1), seed=st.integers(0, 2**32), data=st.data())
def test_split_is_an_order_preserving_partition_independent_of_list_order(ids, fraction, seed, data):
    instructions = [Instruction(i, "p") for i in ids]
    train, heldout = split_holdout(instructions, fraction, seed)
    train_ids, heldout_ids = {i.id for i in train}, {i.id for i in heldout}
    assert not train_ids & heldout_ids and sorted(train + heldout, key=lambda i: ids.index(i.id)) == instructions
    assert train == [i for i in instructions if i.id in train_ids]
    assert heldout == [i for i in instructions if i.id in heldout_ids]
    shuffled = data.draw(st.permutations(instructions))
    train2, heldout2 = split_holdout(shuffled, fraction, seed)
    assert {i.id for i in train2} == train_ids and {i.id for i in heldout2} == heldout_ids


def test_split_fraction_extremes_growth_and_seed():
    instructions = make(2000)
    train, heldout = split_holdout(instructions, 0.2, seed=0)
    assert 330 < len(heldout) < 470
    grown_train, grown_heldout = split_holdout(instructions + make(500, "new"), 0.2, seed=0)
    assert heldout == grown_heldout[: len(heldout)] and train == grown_train[: len(train)]
    assert split_holdout(instructions, 0.2, seed=1)[1] != heldout
    assert split_holdout(instructions, 0.0, seed=0) == (instructions, [])
    assert split_holdout(instructions, 1.0, seed=0) == ([], instructions)
    with pytest.raises(ValueError, match="fraction"):
        split_holdout(instructions, 1.5, seed=0)


@settings(max_examples=50, deadline=None)
@given(size=st.integers(1, 80), data=st.data(), round_index=st.integers(1, 50), seed=st.integers(0, 2**32))
def test_draw_round_has_no_duplicates_when_n_fits(size, data, round_index, seed):
    train = make(size)
    n = data.draw(st.integers(0, size))
    drawn = draw_round(train, n, round_index, seed)
    assert len(drawn) == n and len({i.id for i in drawn}) == n and all(i in train for i in drawn)


def test_rounds_use_the_whole_set_before_repeating():
    train, _ = split_holdout(procedural_instructions(size=1000), 0.2, seed=0)
    rounds = [draw_round(train, 100, r, seed=7) for r in range(1, 8)]
    assert rounds[3] == draw_round(list(reversed(train)), 100, 4, seed=7)  # order of the set does not matter
    used = [i.id for drawn in rounds for i in drawn]
    assert len(used) == len(set(used)) == 700 <= len(train)
    assert draw_round(train, 100, 1, seed=8) != rounds[0]
    # the next pass reshuffles: round 1 of the second pass is not round 1 of the first
    passes = len(train) // 100 + 1
    assert draw_round(train, 100, passes + 1, seed=7) != rounds[0]
    assert len({round_seed(7, e) for e in range(100)}) == 100


def test_draw_round_cycles_reshuffled_copies_when_n_exceeds_the_set():
    train = make(30)
    drawn = draw_round(train, 75, round_index=1, seed=1)
    assert len(drawn) == 75
    counts = Counter(i.id for i in drawn)
    assert set(counts.values()) == {2, 3} and sum(v == 3 for v in counts.values()) == 15
    chunks = [{i.id for i in drawn[a:b]} for a, b in ((0, 30), (30, 60), (60, 75))]
    assert [len(c) for c in chunks] == [30, 30, 15]
    assert drawn[:30] != drawn[30:60]
    assert draw_round(train, 0, 1, 0) == []
    with pytest.raises(ValueError, match="empty set"):
        draw_round([], 5, 1, 0)
    with pytest.raises(ValueError, match="numbered from 1"):
        draw_round(train, 5, 0, 0)
