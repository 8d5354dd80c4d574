"""configs/paper/: every configuration of the paper's experiment loads and validates (names, paths, registries)
without downloading anything; the data options are checked against local copies in the same formats."""

from pathlib import Path

import pytest
import yaml

from sparta.config import config_from_dict, read_yaml
from sparta.evaluation.scoring import EVAL_SCORERS
from sparta.evaluation.specs import parse_specs
from sparta.pool_init.config import load_init_config
from sparta.pool_init.subsets import member_examples
from sparta.tasks import TASKS, load_task

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "paper"
RUNS = sorted(p for p in PAPER.rglob("*.yaml") if p.name not in ("init-pool.yaml", "eval.yaml"))
EXPERTS = [
    "flan_v2", "cot", "oasst1", "lima", "code_alpaca", "gpt4_alpaca", "sharegpt", "wizardlm", "open_orca", "science",
]  # fmt: skip


@pytest.mark.parametrize("path", RUNS, ids=lambda p: str(p.relative_to(PAPER)))
def test_every_run_configuration_validates_with_ray_and_vllm(path):
    data = read_yaml(path)
    config = config_from_dict(data, str(path))
    assert config.run.rounds in (1, 8) and config.run.instructions_per_round == 1000
    assert config.training.learning_rate == 1e-6 and config.training.beta == 0.1 and config.judge.type == "generate"
    assert data["backend"]["placement"] == "ray" and data["ray"] == {"workers": 8, "gpus_per_worker": 1}
    assert data["pool"]["engine"] == "vllm"
    assert (config.backend.placement, config.pool.engine, config.ray.workers) == ("ray", "vllm", 8)
    for member in config.pool.members:
        assert member.clone_of or member.model == "Qwen/Qwen2.5-7B-Instruct"
        assert member.adapter in (None, f"pools/paper/adapters/{member.name}")  # where init-pool writes them


def test_the_run_names_the_ten_experts_init_pool_makes():
    init = load_init_config(PAPER / "init-pool.yaml")
    assert init.base == "Qwen/Qwen2.5-7B-Instruct" and [m.name for m in init.members] == EXPERTS
    assert len({str(m.subset.where["dataset"]) for m in init.members}) == 10  # ten different Tulu-v2 sources
    for member in init.members:
        assert member.subset.task == "hf_dataset" and member.subset.options["path"] == "allenai/tulu-v2-sft-mixture"
    config = config_from_dict(read_yaml(PAPER / "sparta.yaml"))
    assert config.member_names() == EXPERTS
    assert config_from_dict(init.sparta).pool.dtype == "bfloat16"


def test_init_pool_reads_tulu_v2_conversations(tmp_path):
    """A local dataset with the mixture's columns (dataset, id, messages): each expert gets its own source's turns."""
    from datasets import Dataset

    rows = [
        {"dataset": source, "id": f"{source}-{i}", "messages": [
            {"role": "user", "content": f"question {i} of {source}"},
            {"role": "assistant", "content": f"answer {i} of {source}"},
        ]}
        for source in ("flan_v2", "cot", "science.evidence_inference") for i in range(3)
    ]  # fmt: skip
    rows.append({"dataset": "cot", "id": "cot-system", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]})  # fmt: skip
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "tulu"))
    init = load_init_config(PAPER / "init-pool.yaml")
    for member in init.members[:2] + init.members[-1:]:
        subset = member.subset.model_copy(update={"options": {**member.subset.options, "path": str(tmp_path / "tulu")}})
        examples = member_examples(member.model_copy(update={"subset": subset}), init.seed)
        source = subset.where["dataset"]
        assert sorted(e.prompt for e in examples) == [f"question {i} of {source}" for i in range(3)]  # no system turn
        assert all(e.response == e.prompt.replace("question", "answer") for e in examples)


def test_the_evaluation_names_registered_tasks_scorers_and_a_member_judge():
    specs = parse_specs(yaml.safe_load((PAPER / "eval.yaml").read_text()))
    members = set(EXPERTS)
    for spec in specs:
        assert spec.task in TASKS and spec.scorer in EVAL_SCORERS
        assert spec.judge is None or spec.judge in members
    assert {s.options.get("path") for s in specs} >= {"openai/gsm8k", "tatsu-lab/alpaca", "truthfulqa/truthful_qa"}


def _local_task_options() -> list[tuple[str, str, dict]]:
    found = []
    for path in [*RUNS, PAPER / "eval.yaml"]:
        data = read_yaml(path) if path.name != "eval.yaml" else {"specs": yaml.safe_load(path.read_text())}
        entries = data.get("specs") or [data["data"]]
        for entry in entries:
            options = entry.get("options", {})
            if str(options.get("path", "")).startswith("data/sparta/"):
                found.append((path.name, entry["task"], options))
    return found


@pytest.mark.parametrize(
    "where,task,options", _local_task_options(), ids=lambda x: str(x) if isinstance(x, str) else ""
)
def test_the_authors_files_read_with_the_configured_options(where, task, options, shared_tasks):
    local = {**options, "path": str(shared_tasks / options["path"].removeprefix("data/sparta/"))}
    assert len(load_task(task, local)) > 100
