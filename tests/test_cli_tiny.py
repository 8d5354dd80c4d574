"""The command line on a configs/tiny.yaml run: run, eval, report, compare, and clear errors."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparta.cli import app
from sparta.rundir import read_json

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "tiny"
    result = runner.invoke(
        app,
        [
            "run",
            str(ROOT / "configs" / "tiny.yaml"),
            "--out",
            str(out),
            "--set",
            "run.rounds=1",
            "--set",
            "run.instructions_per_round=4",
            "--set",
            "pool.sampling.max_new_tokens=8",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Leaderboard" in result.output and "judge failure rate" in result.output
    assert "answers cut by max_new_tokens:" in result.output
    return out


def test_training_json_counts_cut_answers_and_long_pairs(tiny_run):
    from sparta.rundir import read_jsonl

    round_path = tiny_run / "round_001"
    training = read_json(round_path / "training.json")
    cut = sum(r["meta"]["finish"] == "length" for r in read_jsonl(round_path / "responses.jsonl"))
    assert cut > 0  # 8 new tokens from a random model: most answers never end
    assert training["truncated_responses"] == cut
    pairs = read_jsonl(round_path / "pairs.jsonl")
    cut_pairs = sum(p["chosen_truncated"] or p["rejected_truncated"] for p in pairs)
    assert cut_pairs > 0  # configs/tiny.yaml keeps pairs of cut answers (tournament.truncated: keep)
    assert training["pairs_kept_truncated"] == cut_pairs and training["pairs_dropped_truncated"] == 0
    assert len(pairs) <= 4  # one pair at most per match
    for member in ("terse", "careful", "playful"):
        counts = training["members"][member]
        assert counts["pairs_too_long"] == 0 and counts["pairs_trained"] == len(pairs)


def test_eval_report_compare(tiny_run):
    result = runner.invoke(app, ["eval", str(tiny_run), "--limit", "4", "--max-new-tokens", "6"])
    assert result.exit_code == 0, result.output
    assert "pool mean" in result.output and "best member" in result.output
    assert "Change on the same items" in result.output and "0 -> 1" in result.output
    ev = read_json(tiny_run / "eval.json")
    assert ev["rounds"] == [0, 1] and {s["member"] for s in ev["scores"]} == {"terse", "careful", "playful"}
    result = runner.invoke(app, ["report", str(tiny_run)])
    assert result.exit_code == 0, result.output
    html = (tiny_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # ratings, eval, win matrix, judges
    # diversity per round, from the evaluation's answers
    from sparta.report.diversity import diversity_per_round

    per_round = diversity_per_round(tiny_run)
    assert [r for r, _ in per_round] == [0, 1]
    assert all(0 <= d["mean_disagreement"] <= 1 for _, d in per_round)
    assert "mean disagreement" in html
    result = runner.invoke(app, ["compare", str(tiny_run), str(tiny_run)])
    assert result.exit_code == 0, result.output
    from sparta.report.compare import compare_rows

    result = runner.invoke(app, ["compare", "--markdown", str(tiny_run)])
    assert result.exit_code == 0 and result.output.startswith("| run |")

    rows, columns = compare_rows([tiny_run])
    assert "procedural mean final" in columns and rows[0]["procedural mean final"] != "-"
    assert re.fullmatch(r"[+-]\d\.\d\d \[[+-]\d\.\d\d, [+-]\d\.\d\d\]", rows[0]["procedural mean change"])
    assert " p=" in rows[0]["procedural best change"]  # gold answers: McNemar's test
    assert "McNemar p" in html
    assert rows[0]["pairs kept"] == len((tiny_run / "round_001" / "pairs.jsonl").read_text().splitlines())


def test_resume_flag_and_config_mismatch(tiny_run, tmp_path):
    result = runner.invoke(
        app, ["run", str(ROOT / "configs" / "tiny.yaml"), "--out", str(tmp_path / "none"), "--resume"]
    )
    assert result.exit_code == 2 and "no state.json" in result.output
    result = runner.invoke(
        app, ["run", str(ROOT / "configs" / "tiny.yaml"), "--out", str(tiny_run), "--set", "tournament.alpha=0.1"]
    )
    assert result.exit_code == 2 and "tournament.alpha" in result.output


def test_bad_config_value_is_named(tmp_path):
    result = runner.invoke(
        app, ["run", str(ROOT / "configs" / "tiny.yaml"), "--out", str(tmp_path / "x"), "--set", "tournament.alpha=7"]
    )
    assert result.exit_code == 2
    assert "tournament.alpha" in result.output and "less than or equal to 1" in result.output
    assert not (tmp_path / "x").exists()  # nothing written for a configuration that does not validate
