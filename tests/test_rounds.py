"""One round's bookkeeping: online ratings from judgments, then pairs under the end-of-round ratings."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparta.config import TournamentConfig
from sparta.records import Instruction, Judgment, Match, Response
from sparta.tournament import ReputationState, judges_for, preference_pairs, rate_matches, score_table, select_pairs
from sparta.tournament.reputation import update_pair

MEMBERS = ["a", "b", "c", "d"]


def setup():
    i1, i2 = Instruction("x1", "Say hi", "chat"), Instruction("x2", "Add 2+2", "math")
    matches = [Match(0, i1, "a", "b"), Match(1, i2, "c", "a")]
    responses = {(i.id, m): Response(i.id, m, f"{m} answers {i.id}") for i in (i1, i2) for m in MEMBERS}
    j = [
        Judgment("c", "a", "x1", 8.0),
        Judgment("d", "a", "x1", 6.0),
        Judgment("c", "b", "x1", 4.0),
        Judgment("d", "b", "x1", None, "unparseable"),
        Judgment("b", "c", "x2", 5.0),
        Judgment("d", "c", "x2", 5.0),
        Judgment("b", "a", "x2", 5.0),
        Judgment("d", "a", "x2", 5.0),
    ]
    return matches, responses, j


def test_judges_are_the_others():
    m = Match(0, Instruction("x", "t"), "a", "b")
    assert judges_for(m, MEMBERS, "others") == ["c", "d"]
    assert judges_for(m, MEMBERS, "all") == MEMBERS


def test_round_by_hand():
    cfg = TournamentConfig()
    matches, responses, judgments = setup()
    table = score_table(judgments)
    state = ReputationState.initial(MEMBERS, cfg)
    outcomes = rate_matches(state, matches, table, cfg)
    # match 0: a = (100*8 + 100*6)/200 = 7; b = 4 (d's failed judgment excluded)
    assert (outcomes[0].score_a, outcomes[0].score_b) == (pytest.approx(7.0), pytest.approx(4.0))
    expected = ReputationState.initial(MEMBERS, cfg)
    update_pair(expected, "a", "b", 7.0, 4.0, cfg)
    update_pair(expected, "c", "a", 5.0, 5.0, cfg)
    assert state == expected
    pairs = preference_pairs(matches, responses, table, state.ratings, cfg)
    # the tie in match 1 is dropped
    assert len(pairs) == 1
    p = pairs[0]
    assert (p.chosen_model, p.rejected_model, p.prompt, p.domain) == ("a", "b", "Say hi", "chat")
    assert p.chosen == "a answers x1" and p.margin == pytest.approx(3.0)


def test_min_margin_drops_close_pairs():
    matches, responses, judgments = setup()
    cfg = TournamentConfig(min_margin=3.5)
    table = score_table(judgments)
    assert preference_pairs(matches, responses, table, {m: 100.0 for m in MEMBERS}, cfg) == []


def test_unjudged_match_is_not_rated():
    cfg = TournamentConfig()
    matches, _, judgments = setup()
    table = score_table([j for j in judgments if j.model != "b"])
    state = ReputationState.initial(MEMBERS, cfg)
    outcomes = rate_matches(state, matches, table, cfg)
    assert not outcomes[0].rated and outcomes[0].score_b is None
    assert state.updates == 1


def _cut(responses, *keys):
    """The same responses with those answers cut by max_new_tokens."""
    return {k: dataclasses.replace(r, meta={"finish": "length"}) if k in keys else r for k, r in responses.items()}


def test_a_pair_with_a_cut_answer_is_dropped_and_counted_by_default():
    matches, responses, judgments = setup()
    table, ratings = score_table(judgments), {m: 100.0 for m in MEMBERS}
    cut = _cut(responses, ("x1", "b"))  # the rejected side of the one pair
    dropped = select_pairs(matches, cut, table, ratings, TournamentConfig())
    assert (dropped.pairs, dropped.dropped_truncated, dropped.kept_truncated) == ([], 1, 0)
    kept = select_pairs(matches, cut, table, ratings, TournamentConfig(truncated="keep"))
    assert (len(kept.pairs), kept.dropped_truncated, kept.kept_truncated) == (1, 0, 1)
    assert (kept.pairs[0].chosen_truncated, kept.pairs[0].rejected_truncated) == (False, True)
    # a cut answer in a match that makes no pair (the tie) counts nowhere
    tie = select_pairs(matches, _cut(responses, ("x2", "c")), table, ratings, TournamentConfig())
    assert (len(tie.pairs), tie.dropped_truncated) == (1, 0) and not tie.pairs[0].rejected_truncated


@given(st.lists(st.tuples(st.floats(1, 10), st.floats(1, 10), st.booleans(), st.booleans()), max_size=12))
def test_drop_and_keep_differ_exactly_by_the_pairs_with_a_cut_side(rows):
    members = ["a", "b", "c"]
    matches, responses, judgments = [], {}, []
    for k, (score_a, score_b, cut_a, cut_b) in enumerate(rows):
        instruction = Instruction(f"x{k}", f"q{k}")
        matches.append(Match(k, instruction, "a", "b"))
        for model, score, cut in (("a", score_a, cut_a), ("b", score_b, cut_b)):
            responses[(instruction.id, model)] = Response(
                instruction.id, model, "t", {"finish": "length" if cut else "eos"}
            )
            judgments.append(Judgment("c", model, instruction.id, score))
    table, ratings = score_table(judgments), {m: 100.0 for m in members}
    keep = select_pairs(matches, responses, table, ratings, TournamentConfig(truncated="keep"))
    drop = select_pairs(matches, responses, table, ratings, TournamentConfig(truncated="drop"))
    assert drop.pairs == [p for p in keep.pairs if not (p.chosen_truncated or p.rejected_truncated)]
    assert drop.dropped_truncated == keep.kept_truncated == len(keep.pairs) - len(drop.pairs)
    assert drop.kept_truncated == keep.dropped_truncated == 0
