"""Bad input on the command line ends with a message naming the problem and exit status 2, never a traceback;
anything else (a bug) keeps its traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparta.cli import app

SRC = Path(__file__).resolve().parents[1] / "src"
runner = CliRunner()


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
