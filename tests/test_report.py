"""The HTML report and the numbers behind it: hand-made run directories checked by hand, and a simulated run."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from sparta.config import config_from_dict, dump_config
from sparta.evaluation.results import BestScore, Estimate, EvalFileError, results_from, write_results
from sparta.evaluation.summary import summarise
from sparta.experiments.simulation import simulate, simulation_config
from sparta.pipeline.state import STAGES, RunState
from sparta.report import judging, pair_examples, ratings, wins
from sparta.report.files import ReportError
from sparta.report.html import DISPLAY_CHARS, write_report
from sparta.rundir import atomic_write_text, read_jsonl, round_dir, write_json, write_jsonl
from sparta.tournament import ReputationState

MEMBERS = ["A", "B", "C"]
XSS = "<script>alert('x')</script> & \"quotes\""
LONG = "chosen " + "word " * 400


def judgment(judge: str, model: str, iid: str, score: float | None, raw: str | None = None) -> dict:
    failure = None if score is not None else "no score in the text"
    return {"judge": judge, "model": model, "instruction_id": iid, "score": score, "failure": failure, "raw": raw}


def outcome(index: int, iid: str, a: str, b: str, sa: float | None, sb: float | None) -> dict:
    rated = sa is not None and sb is not None
    return {
        "index": index,
        "instruction_id": iid,
        "model_a": a,
        "model_b": b,
        "score_a": sa,
        "score_b": sb,
        "change_a": 0.0,
        "change_b": 0.0,
        "rated": rated,
    }


def pair(prompt: str, chosen: str, rejected: str, win: str, lose: str, margin: float, iid: str) -> dict:
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_model": win,
        "rejected_model": lose,
        "margin": margin,
        "instruction_id": iid,
        "domain": "general",
    }


ROUNDS = {
    1: {
        "outcomes": [
            outcome(0, "i1", "A", "B", 7.0, 5.0),  # A wins
            outcome(1, "i2", "B", "C", 6.0, 6.0),  # tie
            outcome(2, "i3", "C", "A", 8.0, 4.0),  # C wins
            outcome(3, "i4", "A", "C", None, 3.0),  # not rated: no judge could score A
        ],
        "judgments": [
            judgment("C", "A", "i1", 8.0),
            judgment("C", "B", "i1", 4.0),  # agrees; |dev| 1 + 1
            judgment("A", "A", "i1", 6.0),
            judgment("A", "B", "i1", 6.0),  # own tie vs A winning: disagrees; 1 + 1
            judgment("A", "B", "i2", 5.0),
            judgment("A", "C", "i2", 7.0),  # prefers C, aggregate ties: disagrees
            judgment("B", "B", "i2", None, "I <b>love</b> it"),
            judgment("B", "C", "i2", 6.0),  # one side only
            judgment("B", "C", "i3", 9.0),
            judgment("B", "A", "i3", 3.0),  # agrees; 1 + 1
            judgment("B", "A", "i4", None, "???"),
            judgment("B", "C", "i4", 3.0),  # unrated match: left out
        ],
        "pairs": [pair("p1", "a1", "b1", "A", "B", 2.0, "i1"), pair("p3", "c3", "a3", "C", "A", 4.0, "i3")],
        "ratings": {"A": 99.0, "B": 100.0, "C": 101.0},
    },
    2: {
        "outcomes": [outcome(0, "i5", "A", "B", 3.0, 9.0)],  # B wins
        "judgments": [judgment("C", "A", "i5", 2.0), judgment("C", "B", "i5", 9.0)],  # agrees; 1 + 0
        "pairs": [pair(XSS, LONG, "short <i>rejected</i>", "B", "A", 6.0, "i5")],
        "ratings": {"A": 98.0, "B": 101.5, "C": 100.5},
    },
}


def hand_made_run(path: Path) -> Path:
    """A 3-member run of two finished rounds, written file by file; initial rating 50 to tell round 0 apart."""
    config = config_from_dict(
        {
            "run": {"name": "hand <made>", "rounds": 2, "instructions_per_round": 4},
            "backend": {"kind": "simulated"},
            "tournament": {"initial_rating": 50.0, "judges": "all"},
            "pool": {"members": [{"name": m, "model": "simulated"} for m in MEMBERS]},
        }
    )
    atomic_write_text(path / "config.yaml", dump_config(config))
    state = RunState(0, MEMBERS, ReputationState.initial(MEMBERS, config.tournament))
    for r, files in ROUNDS.items():
        rd = round_dir(path, r)
        write_jsonl(rd / "outcomes.jsonl", files["outcomes"])
        write_jsonl(rd / "judgments.jsonl", files["judgments"])
        write_jsonl(rd / "pairs.jsonl", files["pairs"])
        write_json(rd / "ratings.json", {"round": r, "ratings": files["ratings"], "sigmas": {}, "updates": 0})
        write_json(rd / "training.json", {"pairs": len(files["pairs"]), "members": {m: {"loss": 0.5} for m in MEMBERS}})
        for stage in STAGES:
            state.mark(r, stage)
    state.reputation.ratings = dict(ROUNDS[2]["ratings"])
    state.save(path / "state.json")
    return path


def embedded_pngs(text: str) -> dict[str, bytes]:
    pattern = r'<img class="plot" id="plot-([\w-]+)" alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"'
    found = re.findall(pattern, text)
    return {name: base64.b64decode(data, validate=True) for name, data in found}


def assert_png(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.width > 100 and im.height > 100
        return im.size


# -- the numbers, by hand ----------------------------------------------------------------------------------
def test_win_matrix_counts_every_rated_match_of_every_round(tmp_path):
    wm = wins.win_matrix(hand_made_run(tmp_path))
    a, b, c = 0, 1, 2
    assert wm.members == MEMBERS
    assert wm.games == [[0, 2, 1], [2, 0, 1], [1, 1, 0]]  # the unrated A-C match is not counted
    assert wm.wins[a][b] == 1.0 and wm.wins[b][a] == 1.0  # A won round 1, B won round 2
    assert wm.wins[b][c] == 0.5 and wm.wins[c][b] == 0.5  # a tie counts half
    assert wm.wins[c][a] == 1.0 and wm.wins[a][c] == 0.0
    assert wm.share(a, b) == 0.5 and wm.share(c, a) == 1.0 and wm.share(a, c) == 0.0 and wm.share(a, a) is None


def test_judge_agreement_with_the_aggregate_by_hand(tmp_path):
    rows = {x.judge: x for x in judging.judge_agreement(hand_made_run(tmp_path))}
    assert list(rows) == MEMBERS
    a, b, c = rows["A"], rows["B"], rows["C"]
    # A: i1 own tie vs aggregate win (disagree), i2 prefers C vs aggregate tie (disagree); |dev| 1+1+1+1
    assert (a.matches, a.agree, a.ties, a.scores) == (2, 0, 1, 4)
    assert a.agreement == 0.0 and a.mad == pytest.approx(1.0)
    # B: i3 agrees; i2 scored one side only (counts for the deviation, not for agreement); i4 was not rated
    assert (b.matches, b.agree, b.ties, b.scores) == (1, 1, 0, 3)
    assert b.agreement == 1.0 and b.mad == pytest.approx(2.0 / 3.0)
    # C: i1 and i5 (round 2) agree; |dev| 1+1+1+0
    assert (c.matches, c.agree, c.scores) == (2, 2, 4)
    assert c.agreement == 1.0 and c.mad == pytest.approx(0.75)


def test_agreement_of_a_judge_that_never_judged_is_unknown():
    rows = judging.agreement_from_rows([], [outcome(0, "i1", "A", "B", 7.0, 5.0)])
    assert rows == {}
    assert judging.JudgeAgreement("Z").agreement is None and judging.JudgeAgreement("Z").mad is None


def test_judge_failures_by_hand(tmp_path):
    rows = {x.judge: x for x in judging.judge_failures(hand_made_run(tmp_path))}
    assert [(rows[m].judgments, rows[m].failures) for m in MEMBERS] == [(4, 0), (6, 2), (4, 0)]
    assert rows["B"].rate == pytest.approx(2 / 6) and rows["A"].rate == 0.0
    assert rows["B"].examples == ["I <b>love</b> it", "???"]
    assert rows["B"].reasons == {"no score in the text": 2}


def test_failure_examples_are_distinct_and_capped():
    rows = [judgment("J", "A", f"i{k}", None, raw) for k, raw in enumerate(["x", "x", "y", "z", "w"])]
    (stats,) = judging.failures_from_rows(rows, ["J"], examples=3)
    assert stats.failures == 5 and stats.examples == ["x", "y", "z"]


def test_rating_history_starts_at_the_configured_initial_rating(tmp_path):
    history = ratings.rating_history(hand_made_run(tmp_path))
    assert history.rounds == [0, 1, 2] and history.initial == 50.0
    assert history.ratings == {"A": [50.0, 99.0, 98.0], "B": [50.0, 100.0, 101.5], "C": [50.0, 101.0, 100.5]}


def test_preference_examples_come_from_the_last_round_spread_over_margins(tmp_path):
    (example,) = pair_examples.preference_examples(hand_made_run(tmp_path))
    assert (example.round, example.pair.chosen_model, example.pair.rejected_model, example.pair.margin) == (
        2,
        "B",
        "A",
        6.0,
    )
    pairs = [{"margin": m} for m in (5.0, 1.0, 3.0, 2.0, 4.0)]
    assert [p["margin"] for p in pair_examples.spread_by_margin(pairs, 3)] == [5.0, 3.0, 1.0]
    assert [p["margin"] for p in pair_examples.spread_by_margin(pairs, 9)] == [5.0, 4.0, 3.0, 2.0, 1.0]


def test_eval_file_without_a_mean_shows_no_pool_mean_of_its_own():
    """The pool mean is the evaluation's (eval.json's ``mean``); a reader never computes another one."""
    data = {
        "rounds": [0, 2],
        "tasks": ["gsm8k"],
        "scores": [
            {"member": "A", "round": 0, "task": "gsm8k", "score": 0.2, "low": 0.1, "high": 0.3, "n": 50},
            {"member": "B", "round": 0, "task": "gsm8k", "score": 0.4, "low": None, "high": None, "n": 50},
            {"member": "A", "round": 2, "task": "gsm8k", "score": 0.5},
            {"member": "B", "round": 2, "task": "gsm8k", "score": 0.7},
            {"member": "C", "round": 2, "task": "gsm8k", "score": None, "low": None, "high": None, "n": 0},
        ],
    }
    scores = results_from(data)
    assert scores.rounds == [0, 2] and scores.tasks == ["gsm8k"]
    assert scores.pool_mean("gsm8k") == {} and scores.best_member("gsm8k") == {}
    assert [p.score for p in scores.series("gsm8k", "A")] == [0.2, 0.5]
    assert scores.series("gsm8k", "C") == []  # C has no score: nothing to draw
    assert scores.members() == ["A", "B", "C"]


def test_eval_mean_and_best_come_from_the_file():
    point = {"score": 0.5, "low": 0.4, "high": 0.6, "n": 20}
    data = {
        "rounds": [0, 1],
        "tasks": ["t"],
        "scores": [{"member": m, "round": r, "task": "t", **point} for m in ("A", "B") for r in (0, 1)],
        "mean": {"0": {"t": {"score": 0.45, "low": 0.4, "high": 0.5, "n": 20}}, "1": {"t": dict(point)}},
        "best": {
            "0": {"t": {"member": "B", **point}},
            "1": {"t": {"member": None, "score": None, "low": None, "high": None, "n": 0}},
        },
    }
    scores = results_from(data)
    assert scores.pool_mean("t")[0] == Estimate(score=0.45, low=0.4, high=0.5, n=20)
    assert scores.best_member("t") == {0: BestScore(member="B", score=0.5, low=0.4, high=0.6, n=20)}


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"member": "A", "round": 0, "task": "t"}, "scores[1]: missing field 'score'"),
        ({"member": "A", "round": 0, "task": "t", "score": "high"}, "scores[1].score"),
        ({"member": "A", "round": -1, "task": "t", "score": 0.5}, "scores[1].round"),
        ({"member": "A", "round": 0, "task": "t", "score": 0.5, "low": "x"}, "scores[1].low"),
        ({"member": 3, "round": 0, "task": "t", "score": 0.5}, "scores[1].member: expected a string, got 3"),
        ({"member": "A", "round": 0, "task": "u", "score": 0.5}, "scores[1]: round 0 / task 'u' is not listed"),
    ],
)
def test_bad_eval_json_names_the_entry_and_field(tmp_path, entry, message):
    run = hand_made_run(tmp_path)
    good = {"member": "A", "round": 0, "task": "t", "score": 0.5}
    (run / "eval.json").write_text(json.dumps({"rounds": [0], "tasks": ["t"], "scores": [good, entry]}))
    with pytest.raises(EvalFileError, match=re.escape(message)) as err:
        write_report(run)
    assert "eval.json" in str(err.value)


def test_outcome_without_a_field_is_an_error_naming_file_and_record(tmp_path):
    run = hand_made_run(tmp_path)
    rows = [dict(o) for o in ROUNDS[1]["outcomes"]]
    del rows[2]["model_b"]
    write_jsonl(round_dir(run, 1) / "outcomes.jsonl", rows)
    with pytest.raises(ReportError, match=r"round_001/outcomes.jsonl record 3: missing field 'model_b'"):
        judging.judge_agreement(run)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ReportError, match="state.json is missing"):
        write_report(tmp_path)


# -- the page -------------------------------------------------------------------------------------------
def test_report_escapes_run_text_truncates_for_display_and_embeds_pngs(tmp_path):
    run = hand_made_run(tmp_path)
    text = write_report(run).read_text(encoding="utf-8")
    assert "<script" not in text and "<b>love" not in text and "<i>rejected" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in text
    assert "I &lt;b&gt;love&lt;/b&gt; it" in text  # a failed judgment's raw text
    assert "hand &lt;made&gt;" in text
    assert f"{len(LONG) - DISPLAY_CHARS} more characters]" in text and "for display only" in text
    assert LONG not in text
    assert "No evaluation yet" in text and "sparta eval RUN_DIR" in text
    pngs = embedded_pngs(text)
    assert set(pngs) == {"ratings", "win_matrix", "judges"}
    for name, data in pngs.items():
        assert_png(data)
        assert (run / f"{name}.png").read_bytes() == data
    assert not (run / "eval.png").exists()
    assert not re.search(r'(?:src|href)="(?!data:|#)', text), "the page must not load anything from outside"


def test_report_of_a_simulated_run_with_and_without_evaluation(tmp_path):
    simulate(simulation_config(4, 3, 30, seed=0), tmp_path)
    text = write_report(tmp_path).read_text(encoding="utf-8")
    for section in ("leaderboard", "ratings", "eval", "wins", "judges", "pairs", "rounds"):
        assert f'<section id="{section}">' in text
    for heading in ("Leaderboard", "Reputation per round", "Win matrix", "Agreement with the aggregate", "Failures"):
        assert f">{heading}</h" in text
    assert "round 3" in text and "No evaluation yet" in text
    assert set(embedded_pngs(text)) == {"ratings", "win_matrix", "judges"}

    members = [f"m{i:02d}" for i in range(1, 5)]
    scores = [
        {"member": m, "round": r, "task": t, "score": 0.1 * k + 0.05 * r, "low": 0.0, "high": 1.0, "n": 20}
        for t in ("gsm8k", "alpaca")
        for k, m in enumerate(members)
        for r in (0, 3)
    ]
    best = {
        str(r): {
            t: {"member": "m04", "score": 0.3 + 0.05 * r, "low": 0.0, "high": 1.0, "n": 20} for t in ("gsm8k", "alpaca")
        }
        for r in (0, 3)
    }
    mean = {
        str(r): {t: {"score": 0.15 + 0.05 * r, "low": 0.0, "high": 1.0, "n": 20} for t in ("gsm8k", "alpaca")}
        for r in (0, 3)
    }
    data = {"rounds": [0, 3], "tasks": ["gsm8k", "alpaca"], "scores": scores, "best": best, "mean": mean}
    write_json(tmp_path / "eval.json", data)
    text = write_report(tmp_path).read_text(encoding="utf-8")
    pngs = embedded_pngs(text)
    assert set(pngs) == {"ratings", "eval", "win_matrix", "judges"}
    assert_png(pngs["eval"])
    assert (tmp_path / "eval.png").read_bytes() == pngs["eval"]
    assert "No evaluation yet" not in text and "<b>pool mean</b>" in text
    assert "<b>best member</b> (m04, then m04)" in text

    (tmp_path / "eval.json").unlink()
    write_report(tmp_path)
    assert not (tmp_path / "eval.png").exists(), "a plot of an evaluation that is gone must not stay behind"


def test_report_shows_the_paired_change_and_mcnemar(tmp_path):
    run = hand_made_run(tmp_path)
    items = {
        (0, "A"): [1.0, 0.0, 0.0, 0.0],
        (0, "B"): [0.0, 0.0, 1.0, 1.0],
        (0, "C"): [1.0, 1.0, 0.0, 0.0],
        (2, "A"): [1.0, 1.0, 1.0, 1.0],  # +3 gained, 0 lost: p = 2 / 8
        (2, "B"): [0.0, 0.0, 1.0, 0.0],
        (2, "C"): [1.0, 1.0, 0.0, 0.0],
    }
    rows = {
        (r, "t", m): [{"instruction_id": f"i{k}", "score": x} for k, x in enumerate(values)]
        for (r, m), values in items.items()
    }
    write_results(run, summarise(rows, [0, 2], ["t"], MEMBERS, seed=0, binary={"t"}))
    text = write_report(run).read_text(encoding="utf-8")
    assert "<th>95% paired CI</th><th>McNemar p</th>" in text
    assert "0.25 (+3/-0)" in text and "1 (+0/-1)" in text and "predates paired statistics" not in text
    # an eval.json written before paired statistics: the change of the means, and a hint
    data = json.loads((run / "eval.json").read_text())
    del data["paired"]
    (run / "eval.json").write_text(json.dumps(data))
    text = write_report(run).read_text(encoding="utf-8")
    assert "predates paired statistics" in text and "(+3/-0)" not in text


def test_report_of_a_run_with_no_rated_round(tmp_path):
    run = hand_made_run(tmp_path)
    state = RunState.load(run / "state.json")
    state.finished = {}
    state.save(run / "state.json")
    text = write_report(run).read_text(encoding="utf-8")
    assert "0 of 2 configured" in text and "No preference pair was kept" in text
    assert set(embedded_pngs(text)) == {"ratings", "win_matrix", "judges"}


def test_bad_round_key_of_the_eval_mean_is_named():
    data = {"scores": [], "mean": {"last": {"t": {"score": 0.5}}}}
    with pytest.raises(EvalFileError, match=r"mean\['last'\]: expected a round number"):
        results_from(data)


def test_rounds_count_cut_answers_and_the_pairs_they_cost(tmp_path):
    from sparta.report.leaderboard import round_summaries

    run = hand_made_run(tmp_path)
    finish = ["length", "eos", "length", "skipped"]
    responses = [
        {"instruction_id": f"i{k}", "model": "A", "text": "t", "meta": {"finish": f}} for k, f in enumerate(finish)
    ]
    write_jsonl(round_dir(run, 1) / "responses.jsonl", responses)
    members = {"A": {"pairs_too_long": 1}, "B": {"pairs_too_long": 3}, "C": {"pairs_too_long": 0}}
    write_json(round_dir(run, 1) / "training.json", {"pairs": 2, "members": members, "pairs_dropped_truncated": 4})
    pairs = [{**row, "rejected_truncated": True} for row in read_jsonl(round_dir(run, 2) / "pairs.jsonl")]
    write_jsonl(round_dir(run, 2) / "pairs.jsonl", pairs)  # the pair shown in the report: its rejected side was cut
    first, second = round_summaries(run)
    assert (first["truncated_answers"], first["pairs_dropped_truncated"], first["pairs_too_long"]) == (2, 4, 3)
    assert (second["truncated_answers"], second["pairs_dropped_truncated"], second["pairs_too_long"]) == (None,) * 3
    text = write_report(run).read_text(encoding="utf-8")
    rounds = text.split('<section id="rounds">')[1].split("</section>")[0]
    assert "<th>answers cut</th><th>pairs dropped: cut</th><th>pairs too long</th>" in rounds
    assert '<td class="num">2</td><td class="num">4</td><td class="num">3</td>' in rounds
    assert "<h4>rejected (A), cut by max_new_tokens</h4>" in text and "<h4>chosen (B)</h4>" in text
