"""The aggregation study: its grid, its statistics by hand, a small real run, and the command end to end."""

import json
import math

import pytest
from typer.testing import CliRunner

from sparta.cli import app
from sparta.experiments.aggregation_study import (
    StudyRun,
    markdown_tables,
    paired_difference,
    run_study,
    study_runs,
    summarise,
    target_rows,
)
from sparta.tournament import AGGREGATORS

runner = CliRunner()


def test_the_grid_runs_share_zero_once():
    runs = study_runs([0, 1], ["uniform", "dawid_skene"], ["noisy", "inverted"], [0.0, 0.1, 0.5])
    # (1 condition without unreliable judges + 2 kinds x 2 shares) x 2 rules x 2 seeds
    assert len(runs) == (1 + 2 * 2) * 2 * 2
    assert sum(r.share == 0 for r in runs) == 4 and all(r.kind == "none" for r in runs if r.share == 0)
    assert StudyRun(aggregation="uniform", kind="none", share=0.0, seed=0).overrides() == [
        "simulation.judge_noise_model=independent",
        "tournament.aggregation=uniform",
    ]
    assert StudyRun(aggregation="peer_rank", kind="biased", share=0.3, seed=0).overrides()[-1] == (
        "simulation.unreliable_judges={biased: 0.3}"
    )


def rows(rule, kind, share, accuracies):
    return [
        {
            "aggregation": rule,
            "kind": kind,
            "share": share,
            "seed": seed,
            "label_accuracy": value,
            "spearman": 0.5,
            "skill_gain": 0.1,
        }
        for seed, value in enumerate(accuracies)
    ]


def test_paired_difference_and_target_by_hand():
    results = (
        rows("uniform", "none", 0.0, [0.80, 0.82, 0.84])
        + rows("reputation", "none", 0.0, [0.81, 0.82, 0.83])
        + rows("dawid_skene", "none", 0.0, [0.81, 0.83, 0.85])
        + rows("uniform", "inverted", 0.3, [0.70, 0.72, 0.74])
        + rows("reputation", "inverted", 0.3, [0.70, 0.71, 0.72])
        + rows("dawid_skene", "inverted", 0.3, [0.80, 0.81, 0.82])
    )
    mean, half, seeds = paired_difference(results, "inverted", 0.3, "dawid_skene", "uniform", "label_accuracy")
    # differences 0.10, 0.09, 0.08: mean 0.09, sd 0.01, t(0.975, 2) = 4.303 -> half-width 4.303 * 0.01 / sqrt(3)
    assert (mean, seeds) == (pytest.approx(0.09), 3)
    assert half == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5)
    (row,) = target_rows(results, ["inverted"])
    assert row["aggregation"] == "dawid_skene" and row["target met"]
    assert row["vs reputation at 30%"][0] == pytest.approx(0.10)
    worse = results[:6] + rows("dawid_skene", "none", 0.0, [0.70, 0.71, 0.72]) + results[9:]
    assert not target_rows(worse, ["inverted"])[0]["target met"]  # loses 12 points without unreliable judges
    table = markdown_tables(summarise(results), target_rows(results, ["inverted"]))
    assert "| 30% inverted | 0.720 ± 0.020 | 0.710 ± 0.010 | 0.810 ± 0.010 |" in table
    assert "| inverted | dawid_skene | +0.090 ± 0.025 |" in table


def test_a_small_study_runs_every_rule_and_mirrors_inverted_judges():
    results = run_study(
        models=6, rounds=2, instructions=150, seeds=[0, 1], kinds=("inverted",), shares=(0.0, 0.3), jobs=1
    )
    assert {r["aggregation"] for r in results} == set(AGGREGATORS.names())
    assert len(results) == 2 * len(AGGREGATORS.names()) * 2
    assert all(r["pairs"] > 0 and 0.0 <= r["label_accuracy"] <= 1.0 for r in results)
    # two of six judges score 11 - the honest score: the plain mean loses much of its signal, EM mirrors them back
    # (with half the judges inverted the two explanations are equally likely and no rule can tell them apart)
    for seed in (0, 1):
        accuracy = {
            r["aggregation"]: r["label_accuracy"] for r in results if r["seed"] == seed and r["kind"] == "inverted"
        }
        assert accuracy["dawid_skene"] > accuracy["uniform"] + 0.1
    honest = {r["aggregation"]: r["label_accuracy"] for r in results if r["seed"] == 0 and r["kind"] == "none"}
    assert honest["uniform"] > 0.7


def test_study_command_writes_the_table_the_plot_and_every_run(tmp_path):
    out = tmp_path / "study"
    args = ["simulate", "--study", "aggregation", "--models", "4", "--rounds", "1", "--instructions", "12"]
    result = runner.invoke(app, [*args, "--seeds", "2", "--jobs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "study.json").read_text())
    assert len(data["runs"]) == (1 + 4 * 3) * len(AGGREGATORS.names()) * 2
    assert data["settings"]["overrides"] == ["simulation.judge_noise_model=independent"]
    assert (out / "aggregation-study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "study.md").read_text()
    assert "**label accuracy** (mean ± sd over seeds)" in markdown and "| 50% colluding |" in markdown
    assert "target met" in result.output and "dawid_skene" in result.output


def test_unknown_study_names_the_known_ones(tmp_path):
    result = runner.invoke(app, ["simulate", "--study", "aggregaton", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "did you mean 'aggregation'" in result.output
