"""Gold-decided and control pairs of the pool's own answers, and the rates judged on them (pure parts)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparta.config import PoolConfig
from sparta.judge_validity import GoldPair, PairVerdict, Sample, build_pairs, preference, sampling_variants
from sparta.judge_validity.pairs import capped, decided_pairs, judges_of, length_pairs, temperature_pairs
from sparta.judge_validity.preferences import summarise_kind
from sparta.report.judge_validity import best_gold_type, gold_table_rows, rate_cell


def sample(item: str, member: str, temperature: float, index: int, correct: bool, tokens: int = 10, **extra) -> Sample:
    return Sample(
        id=f"{item}/{member}-{temperature}/{index}",
        item_id=item,
        member=member,
        source=f"{member}-{temperature}",
        temperature=temperature,
        index=index,
        text=f"answer {index} of {member}",
        tokens=tokens,
        correct=correct,
        **extra,
    )


# ------------------------------------------------------------------------------------------------ decided pairs


def test_decided_pairs_prefer_one_source_and_fall_back_to_the_closest_cross_pair():
    samples = [
        # item a: ann at 0.3 is right and wrong -> one same-source pair (first right, first wrong); ben never right
        sample("a", "ann", 0.3, 0, True),
        sample("a", "ann", 0.3, 1, False),
        sample("a", "ann", 0.3, 2, True),
        sample("a", "ben", 1.0, 0, False),
        # item b: no source is mixed; ann right at 0.3, wrong at 1.0; ben wrong at 0.3 -> ann's two temperatures
        sample("b", "ann", 0.3, 0, True),
        sample("b", "ann", 1.0, 0, False),
        sample("b", "ben", 0.3, 0, False),
        # item c: nothing right -> no pair
        sample("c", "ann", 0.3, 0, False),
        sample("c", "ben", 0.3, 0, False),
    ]
    pairs = decided_pairs(samples)
    assert [(p.item_id, p.first.id, p.second.id, p.same_source) for p in pairs] == [
        ("a", "a/ann-0.3/0", "a/ann-0.3/1", True),
        ("b", "b/ann-0.3/0", "b/ann-1.0/0", False),
    ]
    assert all(p.kind == "decided" and p.first.correct and not p.second.correct for p in pairs)


def test_cross_pair_without_the_same_member_takes_the_nearest_temperature():
    samples = [sample("a", "ann", 0.3, 0, True), sample("a", "ben", 1.0, 0, False), sample("a", "cy", 0.5, 0, False)]
    (pair,) = decided_pairs(samples)
    assert (pair.first.member, pair.second.member, pair.same_source) == ("ann", "cy", False)


# ------------------------------------------------------------------------------------------------ controls


def test_temperature_pairs_need_equal_correctness_and_leave_out_cut_answers():
    samples = [
        sample("a", "ann", 0.3, 0, True),
        sample("a", "ann", 0.7, 0, True),
        sample("a", "ann", 1.0, 0, True),
        sample("a", "ann", 1.0, 1, False),
        sample("a", "ann", 0.3, 1, False, truncated=True),  # the only wrong one at 0.3 is cut: no wrong-wrong pair
        sample("a", "ben", 0.3, 0, False),
    ]
    pairs = temperature_pairs(samples)
    assert [(p.first.id, p.second.id) for p in pairs] == [("a/ann-0.3/0", "a/ann-1.0/0")]
    (pair,) = pairs
    assert pair.same_source and pair.first.temperature < pair.second.temperature


def test_temperature_pairs_across_members_when_each_member_has_one_temperature():
    samples = [sample("a", "ann", 0.3, 0, False), sample("a", "ben", 1.0, 0, False), sample("a", "cy", 0.7, 0, True)]
    assert temperature_pairs(samples) == []
    (pair,) = temperature_pairs(samples, across_members=True)
    assert (pair.first.member, pair.second.member, pair.same_source) == ("ann", "ben", False)


def test_length_pairs_take_shortest_and_longest_past_the_ratio():
    samples = [
        sample("a", "ann", 0.3, 0, True, tokens=10),
        sample("a", "ann", 0.3, 1, True, tokens=14),
        sample("a", "ann", 0.3, 2, True, tokens=15),
        sample("a", "ann", 0.3, 3, True, tokens=40, truncated=True),
        sample("b", "ann", 0.3, 0, False, tokens=10),
        sample("b", "ann", 0.3, 1, False, tokens=14),  # 1.4 < 1.5: no pair
        sample("c", "ann", 0.3, 0, False, tokens=10),
        sample("c", "ann", 1.0, 0, False, tokens=30),  # another temperature: no length pair
    ]
    pairs = length_pairs(samples, min_length_ratio=1.5)
    assert [(p.first.tokens, p.second.tokens, p.item_id) for p in pairs] == [(10, 15, "a")]
    assert length_pairs(samples, min_length_ratio=1.4)[-1].item_id == "b"
    with pytest.raises(ValueError, match="at least 1"):
        length_pairs(samples, min_length_ratio=0.5)


def test_capped_keeps_same_source_pairs_first_and_is_seeded():
    samples = [sample(f"i{k}", "ann", 0.3, 0, True) for k in range(6)]
    others = [sample(f"i{k}", "ann", 0.3, 1, False) for k in range(6)]
    pairs = [
        GoldPair(kind="decided", item_id=f"i{k}", first=samples[k], second=others[k], same_source=k % 2 == 0)
        for k in range(6)
    ]
    kept = capped(pairs, 3, seed=0)
    assert kept == [p for p in pairs if p.same_source]
    two = capped(pairs, 2, seed=0)
    assert len(two) == 2 and all(p.same_source for p in two) and two == capped(pairs, 2, seed=0)
    assert capped(pairs, None, seed=0) == pairs and capped(pairs, 10, seed=0) == pairs


def test_judges_are_the_members_who_wrote_neither_side():
    pair = GoldPair(
        kind="decided",
        item_id="a",
        first=sample("a", "ann", 0.3, 0, True),
        second=sample("a", "ben", 0.3, 0, False),
        same_source=False,
    )
    assert judges_of(pair, ["ann", "ben", "cy", "dee"]) == ["cy", "dee"]
    assert judges_of(pair, ["ann", "ben"]) == ["ann", "ben"]  # nobody else: everyone judges


def test_build_pairs_rejects_duplicate_ids():
    twice = sample("a", "ann", 0.3, 0, True)
    with pytest.raises(ValueError, match="unique"):
        build_pairs([twice, twice])


samples_strategy = st.lists(
    st.builds(
        lambda item, member, temperature, index, correct, tokens, truncated: sample(
            f"i{item}", f"m{member}", temperature, index, correct, tokens=tokens, truncated=truncated
        ),
        st.integers(0, 3),
        st.integers(0, 2),
        st.sampled_from([0.3, 0.7, 1.0]),
        st.integers(0, 3),
        st.booleans(),
        st.integers(1, 60),
        st.booleans(),
    ),
    max_size=60,
    unique_by=lambda s: s.id,
)


@settings(max_examples=200, deadline=None)
@given(samples_strategy, st.randoms(use_true_random=False))
def test_every_pair_differs_only_as_its_kind_says_and_order_does_not_matter(samples, rng):
    pairs = build_pairs(samples, min_length_ratio=1.5)
    for pair in pairs:
        first, second = pair.first, pair.second
        assert first.item_id == second.item_id == pair.item_id and first.id != second.id
        if pair.kind == "decided":
            assert first.correct and not second.correct
        elif pair.kind == "temperature":
            assert first.correct == second.correct and first.member == second.member
            assert first.temperature < second.temperature and not (first.truncated or second.truncated)
        else:
            assert pair.kind == "length" and first.correct == second.correct
            assert (first.member, first.temperature) == (second.member, second.temperature)
            assert second.tokens >= 1.5 * first.tokens and not (first.truncated or second.truncated)
    shuffled = list(samples)
    rng.shuffle(shuffled)
    assert build_pairs(shuffled, min_length_ratio=1.5) == pairs
    mixed_items = {s.item_id for s in samples if s.correct} & {s.item_id for s in samples if not s.correct}
    assert {p.item_id for p in pairs if p.kind == "decided"} == mixed_items


# ------------------------------------------------------------------------------------------------ rates


def _pair(kind: str = "decided", item: str = "a", same_source: bool = True) -> GoldPair:
    return GoldPair(
        kind=kind,
        item_id=item,
        first=sample(item, "ann", 0.3, 0, True),
        second=sample(item, "ann", 0.3, 1, False),
        same_source=same_source,
    )


def test_preference_counts_ties_and_unreadable_scores_as_a_coin():
    assert preference(8, 3) == 1.0 and preference(3, 8) == 0.0
    assert preference(5, 5) == preference(None, 4) == preference(4, None) == 0.5


def test_pair_verdict_per_judgment_and_panel_by_hand():
    verdict = PairVerdict(pair=_pair(), scores={"j1": (8.0, 3.0), "j2": (2.0, 5.0), "j3": (None, 4.0)})
    assert verdict.per_judgment() == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    # panel: mean readable first scores (8 + 2) / 2 = 5 against (3 + 5 + 4) / 3 = 4 -> first preferred
    assert verdict.panel() == 1.0


def test_summarise_kind_counts_what_the_rates_rest_on():
    verdicts = [
        PairVerdict(pair=_pair(item="a"), scores={"j1": (8.0, 3.0), "j2": (6.0, 6.0)}),
        PairVerdict(pair=_pair(item="a", same_source=False), scores={"j1": (2.0, 3.0), "j2": (None, 3.0)}),
        PairVerdict(pair=_pair(item="b"), scores={"j1": (9.0, 1.0), "j2": (9.0, 2.0)}),
    ]
    summary = summarise_kind(verdicts, seed=0)
    assert (summary["pairs"], summary["items"], summary["same_source"]) == (3, 2, 2)
    assert summary["rate"]["score"] == pytest.approx((0.75 + 0.25 + 1.0) / 3)
    assert summary["panel"]["score"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert summary["rate"]["low"] <= summary["rate"]["score"] <= summary["rate"]["high"]
    assert (summary["judgments"], summary["failures"], summary["ties"]) == (12, 1, 1)
    assert summarise_kind([], seed=0)["rate"]["score"] is None


def test_table_cells_and_the_best_type():
    def row(judge_type: str, rate: float | None, speed: float) -> dict:
        kind = {
            "pairs": 40 if rate is not None else 0,
            "rate": {"score": rate, "low": rate and rate - 0.1, "high": rate and rate + 0.1, "n": 40},
            "panel": {"score": rate, "low": rate, "high": rate, "n": 40},
            "judgments": 80,
            "failures": 2,
        }
        return {
            "judge_type": judge_type,
            "decided": kind,
            "temperature": kind,
            "length": kind,
            "judgments_per_s": speed,
        }

    rows = [row("generate", 0.55, 0.5), row("likelihood", 0.7, 3.0), row("logprob", 0.7, 4.0)]
    assert rate_cell(rows[1]["decided"]) == "0.70 [0.60, 0.80] (n=40)"
    assert rate_cell(row("x", None, 1.0)["decided"]) == "-"
    assert best_gold_type(rows) == "logprob"  # as accurate as likelihood and faster
    assert best_gold_type([row("x", None, 1.0)]) is None
    printed = gold_table_rows(rows)
    assert printed[0]["judge type"] == "generate" and printed[0]["failures"] == "6/240"


# ------------------------------------------------------------------------------------------------ variants


def test_sampling_variants_copy_each_member_at_each_temperature():
    pool = PoolConfig.model_validate(
        {
            "sampling": {"temperature": 0.7, "top_p": 0.8, "max_new_tokens": 20},
            "members": [
                {"name": "ann", "model": "tiny-llama", "system_prompt": "Be brief."},
                {"name": "ben", "model": "tiny-llama", "sampling": {"temperature": 1.0, "max_new_tokens": 9}},
            ],
        }
    )
    same, own = sampling_variants(pool, None)
    assert same is pool and [(v.source, v.member, v.temperature) for v in own] == [
        ("ann", "ann", 0.7),
        ("ben", "ben", 1.0),
    ]
    wide, variants = sampling_variants(pool, [0.3, 1.0])
    assert [v.source for v in variants] == ["ann-t030", "ann-t100", "ben-t030", "ben-t100"]
    by_name = {m.name: m for m in wide.members}
    assert list(by_name)[:2] == ["ann", "ben"]  # the members stay and judge
    ann = by_name["ann-t030"]
    assert (ann.clone_of, ann.model, ann.system_prompt) == ("ann", "tiny-llama", "Be brief.")
    assert (ann.sampling.temperature, ann.sampling.top_p, ann.sampling.max_new_tokens) == (0.3, 0.8, 20)
    assert by_name["ben-t100"].sampling.max_new_tokens == 9  # the member's own sampling, temperature replaced
    with pytest.raises(ValueError, match="distinct"):
        sampling_variants(pool, [0.3, 0.3])
    clash = PoolConfig.model_validate({"members": [{"name": "a", "model": "m"}, {"name": "a-t030", "model": "m"}]})
    with pytest.raises(ValueError, match="already use the names"):
        sampling_variants(clash, [0.3])
