"""Exported members carry a model card naming a base that loads, with the run's evaluation; lm-evaluation-harness
evaluates an exported member (its own HF model class) on a local task YAML over local JSON, offline."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("lm_eval")

from peft import AutoPeftModelForCausalLM  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from sparta.config import load_config  # noqa: E402
from sparta.evaluation import evaluate_run  # noqa: E402
from sparta.pipeline.loop import run  # noqa: E402
from sparta.publishing import export_member  # noqa: E402
from sparta.rundir import ADAPTER_CONFIG, read_json  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
OVERRIDES = ["run.rounds=1", "run.instructions_per_round=6", "pool.sampling.max_new_tokens=12", "training.batch_size=8"]
MEMBER = "careful"
ITEMS = [
    {"question": f"What is {a} + {b}?", "choices": [str(a + b), str(a + b + 1), str(a * b + 7)], "answer": 0}
    for a, b in [(2, 3), (4, 4), (7, 1), (5, 6), (9, 2)]
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("models")))
        out = tmp_path_factory.mktemp("run") / "tiny"
        run(load_config(TINY, OVERRIDES), out)
        evaluate_run(out, limit=4, max_new_tokens=6)
        exports = tmp_path_factory.mktemp("exports")
        export_member(out, MEMBER, exports / "merged", merged=True)
        export_member(out, MEMBER, exports / "adapter")
        yield {"run": out, "merged": exports / "merged", "adapter": exports / "adapter"}


def card(directory: Path) -> tuple[dict, str]:
    text = (directory / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def test_the_cards_name_a_base_that_loads_and_the_runs_evaluation(exported):
    merged_header, merged_body = card(exported["merged"])
    adapter_header, adapter_body = card(exported["adapter"])
    base = json.loads((exported["adapter"] / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    assert merged_header["base_model"] == adapter_header["base_model"] == base
    assert (merged_header["library_name"], adapter_header["library_name"]) == ("transformers", "peft")
    assert AutoModelForCausalLM.from_pretrained(base).config.model_type == "llama"  # the named base loads
    assert AutoPeftModelForCausalLM.from_pretrained(exported["adapter"]) is not None
    assert f"# {MEMBER}: SPARTA round 1 of tiny" in adapter_body
    for entry in read_json(exported["run"] / "eval.json")["scores"]:
        if entry["member"] == MEMBER:
            assert f"| {entry['task']} | {entry['round']} | {entry['score']:.3f}" in merged_body


def test_lm_evaluation_harness_scores_an_exported_member_offline(exported, tmp_path):
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    task = {
        "task": "sparta_local_sums",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "sums.yaml").write_text(yaml.safe_dump(task))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={exported['merged']},dtype=float32",
        "--tasks", "sparta_local_sums", "--include_path", str(tmp_path / "tasks"),
        "--device", "cpu", "--batch_size", "4", "--output_path", str(tmp_path / "results"),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = glob.glob(str(tmp_path / "results" / "**" / "results_*.json"), recursive=True)
    results = json.loads(Path(path).read_text())
    accuracy = results["results"]["sparta_local_sums"]["acc,none"]
    assert 0.0 <= accuracy <= 1.0 and accuracy * len(ITEMS) == pytest.approx(round(accuracy * len(ITEMS)))
    assert results["n-samples"]["sparta_local_sums"]["effective"] == len(ITEMS)
