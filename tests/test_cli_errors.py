"""Bad input on the command line ends with a message naming the problem and exit status 2, never a traceback;
anything else (a bug) keeps its traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparta.cli import app

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TINY = ROOT / "configs" / "tiny.yaml"
SIMULATED = "run: {rounds: 1, instructions_per_round: 6}\nbackend: {kind: simulated}\npool: {members: [MEMBERS]}\n"
runner = CliRunner()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """A model cache of the test's own; a test that must fail before any model loads checks it stays empty."""
    path = tmp_path / "model-cache"
    monkeypatch.setenv("SPARTA_CACHE", str(path))
    return path


def nothing_loaded(cache: Path) -> bool:
    return not cache.exists() or not any(cache.iterdir())


def simulated_config(tmp_path: Path, members: int = 3, extra: str = "") -> Path:
    names = ", ".join(f"{{name: m{i}, model: simulated}}" for i in range(members))
    path = tmp_path / f"sim-{members}.yaml"
    path.write_text(SIMULATED.replace("MEMBERS", names) + extra)
    return path


def fails_cleanly(args: list[str], *expected: str) -> str:
    """Run ``sparta ARGS``: exit status 2, an ``error:`` line holding every expected text, no traceback."""
    result = runner.invoke(app, [str(a) for a in args])
    text = " ".join(result.output.split())  # rich wraps long messages
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for piece in expected:
        assert piece in text, f"{piece!r} not in {text!r}"
    return text


# ------------------------------------------------------------------------------------------------ sparta eval


@pytest.mark.parametrize("rounds", ["abc", "0,,2", "", "1.5", "0;2"])
def test_eval_rejects_bad_rounds(tmp_path, rounds):
    fails_cleanly(["eval", tmp_path, "--rounds", rounds], "--rounds", "is not a round number", "such as 0,2")


def test_eval_rejects_a_missing_tasks_file(tmp_path):
    fails_cleanly(
        ["eval", tmp_path, "--tasks", tmp_path / "nope.yaml"], "evaluation tasks file", "nope.yaml", "does not exist"
    )


def test_eval_rejects_a_tasks_file_that_is_not_yaml(tmp_path):
    bad = tmp_path / "tasks.yaml"
    bad.write_text("- task: procedural\n  options: {size: 4\n")
    fails_cleanly(["eval", tmp_path, "--tasks", bad], f"{bad}:", "not valid YAML")


def test_eval_rejects_a_tasks_file_that_is_not_a_list(tmp_path):
    bad = tmp_path / "tasks.yaml"
    bad.write_text("task: procedural\n")
    fails_cleanly(["eval", tmp_path, "--tasks", bad], str(bad), "expected a YAML list of task specs")


def test_eval_rejects_a_bad_spec_naming_the_file_and_field(tmp_path):
    bad = tmp_path / "tasks.yaml"
    bad.write_text("- task: procedural\n  limit: 0\n")
    fails_cleanly(["eval", tmp_path, "--tasks", bad], str(bad), "tasks[0].limit")


@pytest.mark.parametrize("option", ["--limit", "--max-new-tokens"])
def test_eval_rejects_non_positive_numbers(tmp_path, option):
    result = runner.invoke(app, ["eval", str(tmp_path), option, "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert option in result.output and "greater than or equal" in result.output


def test_eval_rejects_a_directory_that_holds_no_run(tmp_path):
    fails_cleanly(["eval", tmp_path], "is not a run directory", "config.yaml and state.json")


# ------------------------------------------------------------------------------------------------ sparta run


def test_run_names_a_missing_configuration(tmp_path):
    fails_cleanly(
        ["run", tmp_path / "nope.yaml", "--out", tmp_path / "r"], "configuration file", "nope.yaml", "does not exist"
    )


def test_run_names_the_line_of_bad_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  rounds: 2\n  seed: [1, 2\n")
    fails_cleanly(["run", bad, "--out", tmp_path / "r"], f"{bad}:", "not valid YAML")


def test_run_names_a_field_out_of_range_and_a_misspelled_name(tmp_path):
    fails_cleanly(["run", TINY, "--out", tmp_path / "r", "--set", "tournament.alpha=2"], "tournament.alpha", "1")
    fails_cleanly(
        ["run", TINY, "--out", tmp_path / "r", "--set", "judge.type=generat"], "judge.type", "did you mean 'generate'"
    )
    fails_cleanly(["run", TINY, "--out", tmp_path / "r", "--set", "notasection"], "section.field=value")


def test_run_refuses_an_out_path_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    fails_cleanly(["run", simulated_config(tmp_path), "--out", target], "is a file, not a run directory")


def test_run_needs_two_members(tmp_path):
    fails_cleanly(
        ["run", simulated_config(tmp_path, members=1), "--out", tmp_path / "r"], "pool.members", "at least 2 members"
    )


def test_run_refuses_a_run_directory_of_another_configuration(tmp_path):
    out = tmp_path / "r"
    result = runner.invoke(app, ["run", str(simulated_config(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    fails_cleanly(
        ["run", simulated_config(tmp_path), "--out", out, "--set", "tournament.alpha=0.3"],
        "holds a run with another configuration",
        "tournament.alpha",
    )
    (out / "state.json").write_text("{not json")
    fails_cleanly(["run", simulated_config(tmp_path), "--out", out], "state.json:1: not valid JSON")
    (out / "state.json").write_text('{"version": 1, "seed": 0}')
    fails_cleanly(["run", simulated_config(tmp_path), "--out", out], "state.json: damaged run state")


def test_run_resume_needs_a_run(tmp_path):
    fails_cleanly(["run", simulated_config(tmp_path), "--out", tmp_path / "r", "--resume"], "holds no run")


def test_run_names_a_missing_task_file_before_any_model_loads(tmp_path, empty_cache):
    missing = tmp_path / "data" / "easy.jsonl"
    fails_cleanly(
        ["run", TINY, "--out", tmp_path / "r", "--set", f"data={{task: math, options: {{path: {missing}}}}}"],
        str(missing),
        "does not exist",
        "SPARTA authors' repository",
        "data/MATH/train_by_difficulty/easy.jsonl",
    )
    assert nothing_loaded(empty_cache)
    fails_cleanly(
        [
            "run",
            TINY,
            "--out",
            tmp_path / "r",
            "--set",
            f"data={{task: jsonl, options: {{path: {missing}, prompt_field: q}}}}",
        ],
        f"no such task file: {missing}",
    )
    assert nothing_loaded(empty_cache)


def test_run_names_a_task_without_instructions_before_any_model_loads(tmp_path, empty_cache):
    data = tmp_path / "empty.jsonl"
    data.write_text('{"question": "no prompt field here"}\n')
    options = f"{{path: {data}, prompt_field: prompt, on_bad_record: skip}}"
    fails_cleanly(
        ["run", TINY, "--out", tmp_path / "r", "--set", f"data={{task: jsonl, options: {options}}}"],
        "task 'jsonl' has no instructions (1 bad record(s) skipped)",
    )
    assert nothing_loaded(empty_cache)


def test_run_names_a_missing_model_and_a_missing_adapter(tmp_path, empty_cache):
    members = "[{name: a, model: ./no/such/model}, {name: b, model: tiny-llama}, {name: c, model: tiny-llama}]"
    fails_cleanly(
        ["run", TINY, "--out", tmp_path / "r", "--set", f"pool.members={members}"],
        "model './no/such/model' is not a local directory",
    )
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    members = f"[{{name: a, model: {empty}}}, {{name: b, model: {empty}}}, {{name: c, model: {empty}}}]"
    fails_cleanly(
        ["run", TINY, "--out", tmp_path / "r2", "--set", f"pool.members={members}"], "could not load its tokenizer"
    )
    adapter = tmp_path / "pools" / "demo" / "adapters" / "a"
    others = "{name: b, model: tiny-llama}, {name: c, model: tiny-llama}"
    members = f"[{{name: a, model: tiny-llama, adapter: {adapter}}}, {others}]"
    fails_cleanly(
        ["run", TINY, "--out", tmp_path / "r3", "--set", f"pool.members={members}"],
        f"adapter directory {adapter} does not exist",
    )
    adapter.mkdir(parents=True)
    fails_cleanly(["run", TINY, "--out", tmp_path / "r4", "--set", f"pool.members={members}"], "no adapter_config.json")


def test_run_ends_a_prompt_over_the_limit_cleanly(tmp_path, empty_cache):
    out = tmp_path / "r"
    fails_cleanly(
        ["run", TINY, "--out", out, "--set", "pool.max_prompt_tokens=8", "--set", "run.rounds=1"],
        "tokens in its chat template, over pool.max_prompt_tokens=8",
        "pool.long_prompt=skip",
    )
    state = json.loads((out / "state.json").read_text())
    assert state["finished"] == {"1": ["matches"]}  # what was done is kept: the matches stage


def test_run_ends_diverged_training_cleanly_and_keeps_the_round(tmp_path, empty_cache):
    """An absurd learning rate in half precision really overflows the tiny model's DPO loss."""
    out = tmp_path / "r"
    fails_cleanly(
        [
            "run",
            TINY,
            "--out",
            out,
            "--set",
            "run.rounds=1",
            "--set",
            "run.instructions_per_round=6",
            "--set",
            "pool.sampling.max_new_tokens=8",
            "--set",
            "pool.dtype=float16",
            "--set",
            "training.learning_rate=0.99",
            "--set",
            "training.batch_size=1",
            "--set",
            "training.epochs=4",
        ],
        "diverged at optimizer step",
        "nothing was saved",
        "lower training.learning_rate",
    )
    state = json.loads((out / "state.json").read_text())
    assert state["finished"]["1"] == ["matches", "responses", "judgments", "ratings"]
    assert not (out / "round_001" / "training.json").exists() and (out / "round_001" / "pairs.jsonl").is_file()


# ------------------------------------------------------------------------------------------------ the other commands


def test_simulate_rejects_bad_numbers_and_a_foreign_run_directory(tmp_path):
    result = runner.invoke(app, ["simulate", "--models", "2"])
    assert result.exit_code == 2 and "Traceback" not in result.output and "--models" in result.output
    out = tmp_path / "sim"
    assert (
        runner.invoke(
            app, ["simulate", "--models", "3", "--rounds", "1", "--instructions", "6", "--out", str(out)]
        ).exit_code
        == 0
    )
    fails_cleanly(
        ["simulate", "--models", "4", "--rounds", "1", "--instructions", "6", "--out", out],
        "holds a run with another configuration",
    )


def test_init_pool_errors_name_the_file_and_field(tmp_path, empty_cache):
    fails_cleanly(["init-pool", tmp_path / "nope.yaml", "--out", tmp_path / "p"], "nope.yaml", "does not exist")
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        "base: tiny-llama\nmembers:\n"
        "  - {name: a, subset: {source: procedural, domain: arithmetic, size: 4}}\n"
        "  - {name: a, subset: {source: procedural, domain: yes_no, size: 4}}\n"
    )
    fails_cleanly(["init-pool", twice, "--out", tmp_path / "p"], "duplicate names ['a']")
    records = tmp_path / "records.yaml"
    missing = tmp_path / "sft.jsonl"
    records.write_text(
        f"base: tiny-llama\nmembers:\n  - {{name: a, subset: {{source: records, options: {{path: {missing}}}}}}}\n"
    )
    fails_cleanly(["init-pool", records, "--out", tmp_path / "p"], f"no such task file: {missing}")
    missing.write_text('{"prompt": "1+1?", "response": "2", "category": "math"}\n')
    records.write_text(records.read_text().replace("}}}", "}, where: {category: code}}}"))
    fails_cleanly(["init-pool", records, "--out", tmp_path / "p"], "has no records with {'category': 'code'}")
    assert nothing_loaded(empty_cache)


def test_eval_refuses_a_simulated_run(tmp_path):
    out = tmp_path / "sim"
    assert runner.invoke(app, ["run", str(simulated_config(tmp_path)), "--out", str(out)]).exit_code == 0
    fails_cleanly(["eval", out], "backend.kind is 'simulated'", "only the hf backend")


def test_report_and_compare_need_run_directories(tmp_path):
    fails_cleanly(["report", tmp_path], "is not a run directory")
    fails_cleanly(["compare", tmp_path], "not a run directory")
    (tmp_path / "config.yaml").write_text("run: {rounds: 1}\n")
    fails_cleanly(["compare", tmp_path], "state.json does not exist")


def test_judge_check_checks_its_types_before_loading_models(tmp_path, empty_cache):
    fails_cleanly(["judge-check", tmp_path / "nope.yaml"], "nope.yaml", "does not exist")
    fails_cleanly(
        ["judge-check", TINY, "--types", "likelihood,logprb"], "unknown judge type 'logprb'", "did you mean 'logprob'"
    )
    fails_cleanly(["judge-check", TINY, "--types", ","], "--types names no judge type")
    assert nothing_loaded(empty_cache)


def test_demo_names_a_bad_override(tmp_path, empty_cache):
    fails_cleanly(
        ["demo", "--out", tmp_path / "d", "--set", "run.rounds=0"], "run.rounds", "greater than or equal to 1"
    )
    assert nothing_loaded(empty_cache)


# ------------------------------------------------------------------------------------------------ bugs


def test_an_unexpected_error_keeps_its_traceback(tmp_path):
    """A non-SpartaError is a bug: the command line must not dress it up as a user error."""
    probe = (
        "import sys, sparta.report.html as html\n"
        "def broken(run_dir):\n"
        "    raise ZeroDivisionError('a bug in the report')\n"
        "html.write_report = broken\n"
        "from sparta.cli import app\n"
        "app(['report', sys.argv[1]])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "ZeroDivisionError: a bug in the report" in done.stderr
    assert "error:" not in done.stdout
