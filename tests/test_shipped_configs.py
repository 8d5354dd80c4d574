"""Every shipped configuration works from a fresh clone, or fails before any model loads with a message that
names the missing file and how to get it."""

import shutil
from pathlib import Path

import pytest

from sparta.config import load_config, read_yaml
from sparta.evaluation.specs import read_specs
from sparta.pipeline.loop import combat_instructions
from sparta.pool_init.config import load_init_config
from sparta.pool_init.init_pool import run_config, run_instructions
from sparta.pool_init.subsets import member_examples
from sparta.tasks import TaskFileNotFoundError, load_task

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "paper"
"""The paper's experiment needs a GPU node and hub downloads by design; test_paper_configs validates it offline."""
SHIPPED = sorted(
    p for p in [*ROOT.glob("configs/**/*.yaml"), *ROOT.glob("src/sparta/configs/*.yaml")] if PAPER not in p.parents
)
HOW_TO_GET = ("does not exist", "SPARTA authors' repository", "github.com/yurujiang2003/sparta")


def kind(path: Path) -> str:
    text = path.read_text()
    if text.lstrip().startswith("-") or "\n- " in text:
        return "eval"
    return "init-pool" if "\nbase:" in f"\n{text}" else "run"


def names_shared_data(path: Path) -> bool:
    """Whether the configuration, with what it extends, reads a file from ../shared."""
    return "../shared" in (path.read_text() if kind(path) == "eval" else str(read_yaml(path)))


def load_everything(path: Path, out: Path) -> int:
    """Validate the file and load every instruction set it names (relative paths from the working directory)."""
    if kind(path) == "eval":
        return sum(len(load_task(spec["task"], spec.get("options", {}))) for spec in read_specs(path))
    if kind(path) == "init-pool":
        config = load_init_config(path)
        examples = sum(len(member_examples(member, config.seed)) for member in config.members)
        return examples + len(run_instructions(run_config(config, out)))
    return len(combat_instructions(load_config(path)))


def test_every_shipped_configuration_is_found_and_classified():
    names = {p.relative_to(ROOT).as_posix(): kind(p) for p in SHIPPED}
    assert names["configs/smollm2.yaml"] == "run" and names["src/sparta/configs/demo.yaml"] == "run"
    assert names["configs/pool-demo.yaml"] == "init-pool" and names["configs/eval/cpu-scale.yaml"] == "eval"
    assert len(names) >= 14


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_configuration_in_a_fresh_clone(path, tmp_path, monkeypatch):
    """A copy of the repository's configurations with nothing beside it: loads, or names the missing file."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "configs", clone / "configs")
    shutil.copytree(ROOT / "src" / "sparta" / "configs", clone / "src" / "sparta" / "configs")
    monkeypatch.chdir(clone)
    assert not (tmp_path / "shared").exists()
    copy = clone / path.relative_to(ROOT)
    try:
        assert load_everything(copy, tmp_path / "out") > 0
    except TaskFileNotFoundError as err:
        message = str(err)
        assert "../shared/data/sparta-tasks/" in message
        assert all(piece in message for piece in HOW_TO_GET), message
        assert names_shared_data(copy)  # only configurations that name a file beside the repository


def test_a_fresh_clone_needs_the_authors_files_only_where_it_names_them(tmp_path, monkeypatch):
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "configs", clone / "configs")
    monkeypatch.chdir(clone)
    failing = []
    for path in sorted(p for p in clone.glob("configs/**/*.yaml") if "paper" not in p.parts):
        try:
            load_everything(path, tmp_path / "out")
        except TaskFileNotFoundError:
            failing.append(path.relative_to(clone).as_posix())
    assert "configs/smollm2.yaml" in failing and "configs/eval/cpu-scale.yaml" in failing
    assert "configs/tiny.yaml" not in failing and "configs/pool-tiny.yaml" not in failing


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_configuration_beside_the_shared_data(path, tmp_path, monkeypatch, request):
    """In the repository, with the authors' files beside it, every configuration loads all its instructions."""
    if names_shared_data(path):
        request.getfixturevalue("shared_tasks")
    monkeypatch.chdir(ROOT)
    assert load_everything(path, tmp_path / "out") > 0


def test_a_fresh_clone_run_stops_before_any_model_loads(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sparta.cli import app

    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "configs", clone / "configs")
    monkeypatch.chdir(clone)
    monkeypatch.setenv("SPARTA_CACHE", str(tmp_path / "model-cache"))
    result = CliRunner().invoke(app, ["run", "configs/baselines/uniform.yaml", "--out", str(tmp_path / "run")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "../shared/data/sparta-tasks/math/easy.jsonl does not exist" in text
    assert "data/MATH/train_by_difficulty/easy.jsonl" in text and "EleutherAI/hendrycks_math" in text
    assert not (tmp_path / "model-cache").exists()  # no model was built or loaded
