"""`sparta export-pairs`: a simulated run's pairs as one Hugging Face dataset that `datasets.load_dataset` reads."""

from pathlib import Path

import pytest
import yaml
from datasets import load_dataset
from typer.testing import CliRunner

from sparta.cli import app
from sparta.experiments.simulation import simulate, simulation_config
from sparta.publishing.pairs import PairsExportError, export_pairs
from sparta.rundir import read_json, read_jsonl, round_dir, write_json

runner = CliRunner()


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pairs") / "sim"
    simulate(simulation_config(4, 3, 30, 0, ["tournament.min_margin=0.5"]), out)
    return out


def test_every_rounds_pairs_load_as_one_dataset(simulated_run, tmp_path):
    out = tmp_path / "dataset"
    result = runner.invoke(app, ["export-pairs", str(simulated_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    train = load_dataset(str(out))["train"]
    for r in (1, 2, 3):
        pairs = read_jsonl(round_dir(simulated_run, r) / "pairs.jsonl")
        rows = train.filter(lambda row, r=r: row["round"] == r)
        assert len(rows) == len(pairs) > 0
        assert rows["chosen"] == [p["chosen"] for p in pairs] and rows["margin"] == [p["margin"] for p in pairs]
    assert len(train) < 3 * 30  # min_margin dropped some matches: the counts are the files', not the matches'
    assert {"prompt", "chosen", "rejected", "chosen_model", "rejected_model"} <= set(train.column_names)


def test_the_card_names_the_config_pool_and_judge(simulated_run, tmp_path):
    export = export_pairs(simulated_run, tmp_path / "dataset")
    card = (tmp_path / "dataset" / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert "sparta-align" in header["tags"] and header["pretty_name"].endswith("simulation")
    config = yaml.safe_load(card.split("```yaml\n")[1].split("```")[0])
    assert config == yaml.safe_load((simulated_run / "config.yaml").read_text())
    for member in config["pool"]["members"]:
        assert f"| {member['name']} |" in card
    assert f"judge type: `{config['judge']['type']}`" in card and "min_margin` = 0.5" in card
    for r, count in export.rows_per_round.items():
        assert f"| {r} | {count} |" in card


def test_a_round_without_final_pairs_is_left_out_and_reexport_replaces(simulated_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml",):
        (run / name).write_text((simulated_run / name).read_text())
    state = read_json(simulated_run / "state.json")
    for r in (1, 2):
        (round_dir(run, r)).mkdir()
        (round_dir(run, r) / "pairs.jsonl").write_text((round_dir(simulated_run, r) / "pairs.jsonl").read_text())
    state["finished"]["2"] = ["matches", "responses", "judgments"]  # round 2 is still being judged
    state["finished"].pop("3")
    write_json(run / "state.json", state)
    out = tmp_path / "dataset"
    assert export_pairs(run, out).rows_per_round == {1: len(read_jsonl(round_dir(run, 1) / "pairs.jsonl"))}
    assert sorted(load_dataset(str(out))["train"].unique("round")) == [1]
    assert sorted(export_pairs(simulated_run, out).rows_per_round) == [1, 2, 3]  # the same DIR, replaced
    assert sorted(load_dataset(str(out))["train"].unique("round")) == [1, 2, 3]  # not datasets' cached copy


def test_clear_errors(simulated_run, tmp_path):
    with pytest.raises(PairsExportError, match="not a run directory"):
        export_pairs(tmp_path, tmp_path / "x")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["export-pairs", str(simulated_run), "--out", str(taken)])
    assert result.exit_code == 2 and "not empty" in result.output
    assert (taken / "notes.txt").read_text() == "mine" and not (taken / "data").exists()
