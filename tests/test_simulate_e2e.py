"""``sparta simulate`` end to end: the real pipeline and run directory on a synthetic tribe."""

import json

from typer.testing import CliRunner

from sparta.cli import app
from sparta.experiments.simulation import simulate, simulation_config
from sparta.rundir import read_jsonl

runner = CliRunner()


def test_simulate_cli_writes_the_run_directory(tmp_path):
    out = tmp_path / "sim"
    result = runner.invoke(
        app, ["simulate", "--models", "5", "--rounds", "3", "--instructions", "40", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Leaderboard" in result.output and "label accuracy" in result.output
    for name in ("config.yaml", "state.json"):
        assert (out / name).is_file()
    for r in (1, 2, 3):
        rd = out / f"round_{r:03d}"
        matches = read_jsonl(rd / "matches.jsonl")
        assert len(matches) == 40
        assert len(read_jsonl(rd / "responses.jsonl")) == len(
            {(m["instruction_id"], s) for m in matches for s in (m["model_a"], m["model_b"])}
        )
        # 3 judges (the others) x 2 responses per match
        assert len(read_jsonl(rd / "judgments.jsonl")) == 40 * 3 * 2
        pairs = read_jsonl(rd / "pairs.jsonl")
        assert pairs and {"prompt", "chosen", "rejected", "chosen_model", "rejected_model", "margin"} <= set(pairs[0])
        assert (rd / "ratings.json").is_file() and (rd / "tribe_state.json").is_file()
    state = json.loads((out / "state.json").read_text())
    assert state["reputation"]["updates"] == 120
    assert all(len(state["finished"][str(r)]) == 5 for r in (1, 2, 3))


def test_rounds_draw_fresh_instructions(tmp_path):
    cfg = simulation_config(4, 3, 30, seed=1)
    simulate(cfg, tmp_path)
    ids = [{m["instruction_id"] for m in read_jsonl(tmp_path / f"round_{r:03d}" / "matches.jsonl")} for r in (1, 2, 3)]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])


def test_same_seed_same_run(tmp_path):
    a = simulate(simulation_config(4, 2, 30, seed=3), tmp_path / "a")
    b = simulate(simulation_config(4, 2, 30, seed=3), tmp_path / "b")
    c = simulate(simulation_config(4, 2, 30, seed=4), tmp_path / "c")
    assert a.ratings == b.ratings and a.skills == b.skills
    assert a.ratings != c.ratings
    for r in (1, 2):
        name = f"round_{r:03d}"
        assert (tmp_path / "a" / name / "pairs.jsonl").read_text() == (
            tmp_path / "b" / name / "pairs.jsonl"
        ).read_text()


def test_sim_learns_something(tmp_path):
    result = simulate(simulation_config(6, 4, 200, seed=0), tmp_path)
    # judges are noisy but informative: more than chance, and the pool improves
    assert result.label_accuracy > 0.6
    assert result.skill_gain > 0
    assert result.spearman > 0


def test_ablations_table(tmp_path):
    result = runner.invoke(
        app, ["simulate", "--ablations", "--models", "4", "--rounds", "2", "--instructions", "30", "--seeds", "2"]
    )
    assert result.exit_code == 0, result.output
    for variant in ("SPARTA", "uniform aggregation", "random pairing"):
        assert variant in result.output


def test_leaderboard_fits_every_rounds_outcomes(tmp_path):
    from sparta.report.leaderboard import LEADERBOARD_TITLE, run_leaderboard

    simulate(simulation_config(4, 3, 30, seed=2), tmp_path)
    outcomes = [read_jsonl(tmp_path / f"round_{r:03d}" / "outcomes.jsonl") for r in (1, 2, 3)]
    rated_per_round = [sum(o["rated"] for o in rows) for rows in outcomes]
    assert min(rated_per_round) > 0
    rows = run_leaderboard(tmp_path, n_boot=0)
    games = sum(r["wins"] + r["losses"] + r["ties"] for r in rows)
    assert games == 2 * sum(rated_per_round)  # every rated match of every round counts once per combatant
    wins = {m: 0 for m in ("m01", "m02", "m03", "m04")}
    for row in (o for rows in outcomes for o in rows if o["rated"]):
        if row["score_a"] != row["score_b"]:
            wins[row["model_a"] if row["score_a"] > row["score_b"] else row["model_b"]] += 1
    assert {r["member"]: r["wins"] for r in rows} == wins
    assert "all rounds" in LEADERBOARD_TITLE
    from sparta.report.html import write_report

    assert "count the matches of all rated rounds" in write_report(tmp_path).read_text()
    result = runner.invoke(app, ["simulate", "--models", "4", "--rounds", "2", "--instructions", "20"])
    assert result.exit_code == 0, result.output
    assert "over all rounds" in " ".join(result.output.split())
