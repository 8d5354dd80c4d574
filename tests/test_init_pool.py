"""init-pool end to end on the tiny Llama: per-member SFT adapters, pool.yaml that a SPARTA run accepts, resuming,
diversity.json, and configuration errors that name the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from safetensors.torch import load_file  # noqa: E402

from sparta.backends.hf.models import resolve_model  # noqa: E402
from sparta.backends.hf.pool import ADAPTER_CONFIG, ADAPTER_WEIGHTS  # noqa: E402
from sparta.config import ConfigError, load_config  # noqa: E402
from sparta.pool_init import InitPoolError, diversity_rows, init_pool, load_init_config  # noqa: E402
from sparta.pool_init.config import BASE_MEMBER  # noqa: E402
from sparta.pool_init.init_pool import ADAPTERS, DIVERSITY_JSON, SFT_JSON  # noqa: E402
from sparta.pool_init.subsets import member_examples  # noqa: E402
from sparta.rundir import SFT_EXAMPLES, read_jsonl  # noqa: E402
from sparta.tasks import TaskDataError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _records(path: Path) -> Path:
    """One shared instruction/response file, split by its `category` field."""
    rows = [
        {"instruction": f"Say the word {w}.", "output": f"{w.capitalize()}.", "category": c}
        for c, words in {"echo": ["river", "tree", "cat", "dog", "sun", "moon"], "other": ["red", "blue"]}.items()
        for w in words
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp: Path, **extra) -> Path:
    data = {
        "base": "tiny-llama",
        "seed": 0,
        "members": [
            {"name": "arith", "subset": {"source": "procedural", "domain": "arithmetic", "size": 8}},
            {
                "name": "yesno",
                "system_prompt": "Answer yes or no.",
                "subset": {"source": "procedural", "domain": "yes_no", "size": 8},
            },
            {
                "name": "echo",
                "subset": {
                    "source": "records",
                    "options": {"path": str(_records(tmp / "data.jsonl"))},
                    "prompt_field": "instruction",
                    "response_field": "output",
                    "where": {"category": "echo"},
                    "size": 4,
                },
            },
        ],
        "sft": {"learning_rate": 1.0e-2, "epochs": 2, "batch_size": 4, "max_length": 128, "lora": {"r": 4, "alpha": 8}},
        "diversity": {"per_domain": 2, "max_new_tokens": 6, "batch_size": 8},
        "sparta": {
            "data": {"task": "procedural", "options": {"size": 20}},
            "pool": {"sampling": {"max_new_tokens": 8}, "max_prompt_tokens": 256},
            "judge": {"type": "likelihood", "batch_size": 8, "max_response_tokens": 32},
            "training": {"learning_rate": 1.0e-4, "batch_size": 4, "max_length": 264},
        },
        **extra,
    }
    path = tmp / "init.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module", autouse=True)
def _environment(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model runs fastest on one thread, above all on a busy machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One init-pool run shared by the tests that only read its output."""
    tmp = tmp_path_factory.mktemp("init")
    config = _config(tmp)
    return config, init_pool(config, tmp / "out")


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / ADAPTER_WEIGHTS))


def test_every_member_gets_a_peft_adapter_and_its_metrics(made):
    _, result = made
    assert result.trained == ["arith", "yesno", "echo"] and result.resumed == []
    for name, directory in result.adapters.items():
        assert {ADAPTER_CONFIG, ADAPTER_WEIGHTS, SFT_JSON} <= {p.name for p in directory.iterdir()}
        base = json.loads((directory / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
        assert base == str(resolve_model("tiny-llama").resolve())  # a path PEFT can load, not an alias
        metrics = result.sft[name]
        assert metrics["steps"] >= 1 and metrics["final_loss"] < metrics["first_loss"]
    assert result.sft["echo"]["examples"] == 4  # the size cap on the 6 `echo` records
    assert not list((result.out / ADAPTERS).glob(".*"))  # no temporary directory left behind


def test_adapters_differ_from_each_other_and_from_the_base(made):
    _, result = made
    weights = {name: _weights(d) for name, d in result.adapters.items()}
    for name, w in weights.items():
        lora_b = [t for k, t in w.items() if "lora_B" in k]
        assert lora_b and any(t.abs().max() > 0 for t in lora_b), f"{name} is still the base (B = 0)"
    names = list(weights)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert weights[a].keys() == weights[b].keys()
            assert any(not torch.equal(weights[a][k], weights[b][k]) for k in weights[a]), f"{a} == {b}"


def test_pool_yaml_is_a_run_configuration_over_the_adapters(made):
    _, result = made
    config = load_config(result.pool_yaml)
    assert config.member_names() == ["arith", "yesno", "echo"]
    for member in config.pool.members:
        assert member.model == "tiny-llama"
        assert Path(member.adapter).is_absolute() and Path(member.adapter) == result.adapters[member.name].resolve()
    assert config.pool.members[1].system_prompt == "Answer yes or no."
    assert config.judge.type == "likelihood" and config.pool.sampling.max_new_tokens == 8


@pytest.fixture(scope="module")
def pool_run(made, tmp_path_factory) -> Path:
    """One SPARTA round from the initialised pool."""
    from sparta.pipeline.loop import run

    _, result = made
    out = tmp_path_factory.mktemp("pool-run") / "run"
    run(load_config(result.pool_yaml, ["run.rounds=1", "run.instructions_per_round=4"]), out)
    return out


def test_a_sparta_run_starts_from_the_initialised_pool(pool_run):
    from sparta.backends.hf.tribe import ADAPTERS as ROUND_ADAPTERS
    from sparta.rundir import read_json

    state = read_json(pool_run / "state.json")
    assert sorted(state["reputation"]["ratings"]) == ["arith", "echo", "yesno"]
    round_adapters = pool_run / "round_001" / ROUND_ADAPTERS
    assert sorted(p.name for p in round_adapters.iterdir()) == ["arith", "echo", "yesno"]


def test_every_adapter_records_the_examples_it_was_fine_tuned_on(made):
    config_path, result = made
    config = load_init_config(config_path)
    for member in config.members:
        recorded = read_jsonl(result.adapters[member.name] / SFT_EXAMPLES)
        expected = member_examples(member, config.seed)
        assert recorded == [{"prompt": ex.prompt, "response": ex.response} for ex in expected]


def test_evaluation_leaves_out_the_prompts_the_members_were_fine_tuned_on(made, pool_run, tmp_path):
    """An evaluation item equal to a member's SFT prompt is held out neither by the combat split (the texts
    combat could draw) nor by anything else but the record beside the member's initial adapter."""
    from sparta.evaluation import evaluate_run
    from sparta.evaluation.specs import EvalTaskSpec, combat_texts, heldout_items, seen_texts

    config_path, result = made
    init = load_init_config(config_path)
    leaked = member_examples(next(m for m in init.members if m.name == "arith"), init.seed)[0]
    items = [{"id": "leaked", "question": leaked.prompt, "answer": leaked.response}]
    items += [{"id": f"fresh{k}", "question": f"What is {k} + 100?", "answer": str(k + 100)} for k in range(3)]
    data = tmp_path / "probe.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in items))
    options = {
        "path": str(data),
        "prompt_field": "question",
        "answer_field": "answer",
        "answer_type": "text",
        "id_field": "id",
    }
    spec = {"task": "jsonl", "options": options, "name": "probe"}
    config = load_config(pool_run / "config.yaml")

    def ids(seen: set[str]) -> list[str]:
        return [x.id for x in heldout_items(config, EvalTaskSpec(**spec), seen)]

    assert ids(combat_texts(config)) == ["probe-leaked", "probe-fresh0", "probe-fresh1", "probe-fresh2"]
    assert ids(seen_texts(config)) == ["probe-fresh0", "probe-fresh1", "probe-fresh2"]
    evaluate_run(pool_run, [0], [spec], 10, None, max_new_tokens=2)
    evaluated = read_jsonl(pool_run / "eval_responses" / "round_000" / "probe.jsonl")
    assert {row["instruction_id"] for row in evaluated} == {"probe-fresh0", "probe-fresh1", "probe-fresh2"}
    assert leaked.prompt not in {row["instruction"] for row in evaluated}


def test_diversity_json_measures_members_and_the_base_on_held_out_prompts(made):
    from sparta.pool_init.init_pool import diversity_instructions, run_instructions

    config_path, result = made
    saved = json.loads((result.out / DIVERSITY_JSON).read_text())
    assert saved["members"] == [BASE_MEMBER, "arith", "yesno", "echo"]
    assert saved["domains"] == ["arithmetic", "yes_no"]  # the procedural members' domains
    ids = {r["instruction_id"] for r in saved["responses"]}
    assert saved["instructions"] == len(ids) >= 3
    config = load_init_config(config_path)
    sft_prompts = {ex.prompt for m in config.members for ex in member_examples(m, config.seed)}
    run_prompts = {x.text for x in run_instructions(result.config)}
    everything = diversity_instructions(config, set())
    held_out = [x for x in everything if x.id in ids]
    assert len(held_out) == len(ids) and not (sft_prompts | run_prompts) & {x.text for x in held_out}
    assert held_out == diversity_instructions(config, sft_prompts | run_prompts)
    assert everything[0] not in diversity_instructions(config, {everything[0].text})
    assert [r["member"] for r in diversity_rows(result)] == saved["members"]


def test_resume_skips_finished_members_and_reuses_the_measures(made, tmp_path):
    config_path, result = made
    out = tmp_path / "out"
    shutil.copytree(result.out, out)
    kept = [*(out / ADAPTERS).rglob("*.*"), out / DIVERSITY_JSON]
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    again = init_pool(config_path, out)
    assert again.trained == [] and again.resumed == ["arith", "yesno", "echo"]
    assert again.sft == result.sft and again.diversity == json.loads((out / DIVERSITY_JSON).read_text())
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps  # nothing retrained, nothing re-measured
    assert load_config(again.pool_yaml).member_names() == ["arith", "yesno", "echo"]


def test_resume_trains_only_the_missing_member(made, tmp_path):
    config_path, result = made
    out = tmp_path / "out"
    shutil.copytree(result.out, out)
    shutil.rmtree(out / ADAPTERS / "yesno")
    (out / ADAPTERS / ".echo.training-stale").mkdir()  # left by a killed process
    kept = (out / ADAPTERS / "arith" / ADAPTER_WEIGHTS).stat().st_mtime_ns
    again = init_pool(config_path, out)
    assert again.trained == ["yesno"] and again.resumed == ["arith", "echo"]
    assert (out / ADAPTERS / "arith" / ADAPTER_WEIGHTS).stat().st_mtime_ns == kept
    assert not (out / ADAPTERS / ".echo.training-stale").exists()
    # the same seed and data train the same adapter again
    new, old = _weights(out / ADAPTERS / "yesno"), _weights(result.adapters["yesno"])
    assert new.keys() == old.keys() and all(torch.allclose(new[k], old[k], atol=1e-6) for k in new)


def test_resume_records_the_examples_of_a_member_trained_without_the_record(made, tmp_path):
    config_path, result = made
    out = tmp_path / "out"
    shutil.copytree(result.out, out)
    (out / ADAPTERS / "echo" / SFT_EXAMPLES).unlink()
    kept = (out / ADAPTERS / "echo" / ADAPTER_WEIGHTS).stat().st_mtime_ns
    again = init_pool(config_path, out)
    assert again.trained == [] and (out / ADAPTERS / "echo" / ADAPTER_WEIGHTS).stat().st_mtime_ns == kept
    recorded = read_jsonl(out / ADAPTERS / "echo" / SFT_EXAMPLES)
    assert recorded == read_jsonl(result.adapters["echo"] / SFT_EXAMPLES) and len(recorded) == 4


def test_a_finished_member_with_other_settings_is_an_error(made, tmp_path):
    config_path, result = made
    out = tmp_path / "out"
    shutil.copytree(result.out, out)
    with pytest.raises(InitPoolError, match="adapters/arith was trained with other settings"):
        init_pool(config_path, out, ["sft.learning_rate=0.5"])


# --------------------------------------------------------------------------------------------- configuration


def test_the_shipped_configs_load_and_name_their_run():
    for name, base in (("pool-demo.yaml", "smollm2-135m-instruct"), ("pool-tiny.yaml", "tiny-llama")):
        config = load_init_config(ROOT / "configs" / name)
        assert config.base == base and len(config.members) >= 3
        assert all(m.subset.source == "procedural" for m in config.members)
    demo = load_init_config(ROOT / "configs" / "pool-demo.yaml")
    assert demo.procedural_domains() == ["arithmetic", "unit_conversion", "multiple_choice", "yes_no"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sparta": {"pool": {"members": []}}}, "sparta.pool.members: init-pool fills it in"),
        (
            {"members": [{"name": "x", "subset": {"source": "procedural", "domain": "poetry"}}]},
            r"members.0.subset.procedural.domain.*unknown procedural domain 'poetry'",
        ),
        ({"members": [{"name": "x", "subset": {"source": "nowhere"}}]}, "members.0.subset"),
        (
            {"members": [{"name": "x", "subset": {"source": "records", "options": {"prompt_field": "q"}}}]},
            "set by init-pool",
        ),
        (
            {"members": [{"name": n, "subset": {"source": "procedural", "domain": "yes_no"}} for n in ("a", "a")]},
            "duplicate names",
        ),
        ({"members": [{"name": "base", "subset": {"source": "procedural", "domain": "yes_no"}}]}, "reference row"),
        ({"sft": {"learning_rate": 0}}, "sft.learning_rate"),
    ],
)
def test_bad_init_configs_name_the_field(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_init_config(_config(tmp_path, **extra))


def test_a_bad_run_section_fails_before_any_training(tmp_path):
    config = _config(tmp_path, sparta={"run": {"rounds": 0}})
    with pytest.raises(ConfigError, match=r"(?s)init.yaml: sparta:.*run.rounds"):
        init_pool(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_records_subsets_filter_cap_and_report_bad_records(tmp_path):
    config = load_init_config(_config(tmp_path))
    echo = config.members[2]
    first = member_examples(echo, seed=0)
    assert len(first) == 4 and all(ex.prompt.startswith("Say the word") for ex in first)
    assert {ex.response for ex in first} <= {"River.", "Tree.", "Cat.", "Dog.", "Sun.", "Moon."}
    assert member_examples(echo, seed=0) == first  # the cap is a seeded sample
    (tmp_path / "data.jsonl").write_text('{"instruction": "Hi.", "category": "echo"}\n')
    with pytest.raises(TaskDataError, match=r"data.jsonl:1: field 'output': missing"):
        member_examples(echo, seed=0)


# --------------------------------------------------------------------------------------------- one member's SFT


def test_sft_trains_only_its_member_and_leaves_the_shared_model_as_it_was():
    from peft import get_peft_model_state_dict

    from sparta.backends.hf.pool import ModelPool
    from sparta.config import LoraConfig, PoolConfig
    from sparta.pool_init.config import SFTSettings
    from sparta.pool_init.sft import train_sft
    from sparta.pool_init.subsets import Example

    config = PoolConfig.model_validate({"members": [{"name": n, "model": "tiny-llama"} for n in ("a", "b")]})
    pool = ModelPool(config, LoraConfig(r=4, alpha=8), seed=0)

    def adapter(member: str) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in get_peft_model_state_dict(pool.model(member), adapter_name=member).items()}

    a0, b0 = adapter("a"), adapter("b")
    inner = pool.model("a").get_base_model()
    use_cache, forward = inner.config.use_cache, inner.__dict__.get("forward")
    examples = [Example(f"What is {i} + 1?", f"The answer is {i + 1}.") for i in range(6)]
    examples.append(Example("Repeat: " + "word " * 200, "No."))  # over max_length: skipped, never cut
    metrics = train_sft(pool, "a", examples, SFTSettings(learning_rate=1e-2, max_length=64), seed=1)
    assert metrics["examples"] == 6 and metrics["skipped_long"] == 1 and metrics["steps"] == 2
    assert any(not torch.equal(a0[k], v) for k, v in adapter("a").items())
    assert all(torch.equal(b0[k], v) for k, v in adapter("b").items())
    assert inner.config.use_cache == use_cache and inner.__dict__.get("forward") is forward
    assert not pool.model("a").training
    with pytest.raises(ValueError, match="none of its 1 SFT examples fits sft.max_length=64"):
        train_sft(pool, "b", examples[-1:], SFTSettings(max_length=64), seed=1)
