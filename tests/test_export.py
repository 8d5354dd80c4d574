"""`sparta export` on a real one-round tiny-llama run: the merged model and the adapter load with transformers and
PEFT, generate, and compute the pool member's logits; saved adapters name a base PEFT can load; clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from peft import AutoPeftModelForCausalLM, PeftModel  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.cli import app  # noqa: E402
from sparta.config import load_config  # noqa: E402
from sparta.pipeline.loop import run  # noqa: E402
from sparta.provisioning import cache_dir, loadable_reference, resolve_model  # noqa: E402
from sparta.publishing import ExportError, export_member, locate  # noqa: E402
from sparta.publishing.export import EXPORT_JSON  # noqa: E402
from sparta.rundir import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_dir, file_sha256, round_dir  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
OVERRIDES = [
    "run.rounds=1",
    "run.instructions_per_round=6",
    "pool.sampling.max_new_tokens=12",
    "tournament.truncated=keep",  # 12 new tokens rarely end a random model's answer: train on those pairs too
    "training.batch_size=8",
]
MEMBER = "careful"
TOLERANCE = 1e-5


@pytest.fixture(scope="module", autouse=True)
def environment(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads on a busy machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("models")))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One trained SPARTA round of three tiny-llama members, with larger DPO steps so the adapters move."""
    out = tmp_path_factory.mktemp("run") / "tiny"
    run(load_config(TINY, [*OVERRIDES, "training.learning_rate=0.05"]), out)
    return out


@pytest.fixture(scope="module")
def prompt_ids() -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-llama"))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 12 + 30?"}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, return_tensors="pt").input_ids


def member_logits(run_dir: Path, member: str, round_index: int, ids: torch.Tensor) -> torch.Tensor:
    """What the pool computes for ``member`` after ``round_index`` (0: as configured)."""
    config = load_config(run_dir / "config.yaml")
    pool = ModelPool(config.pool, config.training.lora, config.run.seed)
    if round_index:
        pool.load_adapter(member, adapter_dir(round_dir(run_dir, round_index), member))
    with torch.no_grad():
        return pool.model(member)(input_ids=ids).logits


def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


def generates(model, ids: torch.Tensor, tokens: int = 4) -> bool:
    with torch.no_grad():
        out = model.generate(input_ids=ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return out.shape[1] == ids.shape[1] + tokens


# --------------------------------------------------------------------------------------------- loadable bases


def test_saved_adapters_name_a_base_peft_can_load(tiny_run, prompt_ids):
    adapter = adapter_dir(round_dir(tiny_run, 1), MEMBER)
    base = json.loads((adapter / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    assert base == str(resolve_model("tiny-llama").resolve()) and Path(base).is_absolute() and Path(base).is_dir()
    model = AutoPeftModelForCausalLM.from_pretrained(str(adapter))  # PEFT finds the base on its own
    expected = member_logits(tiny_run, MEMBER, 1, prompt_ids)
    assert torch.allclose(logits_of(model, prompt_ids), expected, atol=TOLERANCE, rtol=0)


def test_an_alias_is_written_as_its_hub_id_or_a_real_path(tmp_path, monkeypatch):
    assert loadable_reference("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert not (cache_dir() / "smollm2-135m-instruct").exists()  # naming it builds nothing
    assert loadable_reference("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert loadable_reference("my-model") == str((tmp_path / "my-model").resolve())
    assert loadable_reference("tiny-llama-3") == str(resolve_model("tiny-llama-3").resolve())


# --------------------------------------------------------------------------------------------- exports


def test_merged_export_loads_generates_and_computes_the_members_logits(tiny_run, prompt_ids, tmp_path):
    out = tmp_path / "merged"
    done = export_member(tiny_run, MEMBER, out, merged=True)
    assert (done.round, done.merged) == (1, True)
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", EXPORT_JSON} <= files
    assert ADAPTER_CONFIG not in files and not any(p.name.startswith(".") for p in tmp_path.iterdir())

    model = AutoModelForCausalLM.from_pretrained(out)
    expected = member_logits(tiny_run, MEMBER, 1, prompt_ids)
    merged = logits_of(model, prompt_ids)
    assert torch.allclose(merged, expected, atol=TOLERANCE, rtol=0)
    base = member_logits(tiny_run, MEMBER, 0, prompt_ids)
    assert (merged - base).abs().max() > 100 * TOLERANCE  # the trained adapter is in there
    assert generates(model, prompt_ids)

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(resolve_model("tiny-llama")).chat_template
    record = json.loads((out / EXPORT_JSON).read_text())
    adapter = adapter_dir(round_dir(tiny_run, 1), MEMBER) / ADAPTER_WEIGHTS
    assert (record["member"], record["round"], record["adapter_sha256"]) == (MEMBER, 1, file_sha256(adapter))
    assert record["system_prompt"] == "Think step by step, then give the answer."


def test_adapter_export_loads_with_peft_and_computes_the_members_logits(tiny_run, prompt_ids, tmp_path):
    out = tmp_path / "adapter"
    export_member(tiny_run, MEMBER, out)
    assert {ADAPTER_CONFIG, ADAPTER_WEIGHTS, "tokenizer.json", EXPORT_JSON} <= {p.name for p in out.iterdir()}
    expected = member_logits(tiny_run, MEMBER, 1, prompt_ids)
    auto = AutoPeftModelForCausalLM.from_pretrained(str(out))
    assert torch.allclose(logits_of(auto, prompt_ids), expected, atol=TOLERANCE, rtol=0)
    assert generates(auto, prompt_ids)
    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-llama"))
    explicit = PeftModel.from_pretrained(base, str(out))
    assert torch.allclose(logits_of(explicit, prompt_ids), expected, atol=TOLERANCE, rtol=0)
    assert AutoTokenizer.from_pretrained(out).chat_template


def test_round_0_is_the_member_as_configured(tiny_run, prompt_ids, tmp_path):
    assert locate(tiny_run, MEMBER).round == 1  # by default, the last trained round
    out = tmp_path / "initial"
    assert export_member(tiny_run, MEMBER, out, round_index=0, merged=True).round == 0
    model = AutoModelForCausalLM.from_pretrained(out)
    plain = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-llama"))
    assert torch.equal(logits_of(model, prompt_ids), logits_of(plain, prompt_ids))  # no adapter: the base itself
    assert json.loads((out / EXPORT_JSON).read_text())["adapter_sha256"] is None


# --------------------------------------------------------------------------------------------- errors


def test_bad_requests_are_errors_naming_the_problem(tiny_run, tmp_path):
    with pytest.raises(ExportError, match=r"unknown member 'carefull'; the run has terse, careful, playful"):
        export_member(tiny_run, "carefull", tmp_path / "a")
    with pytest.raises(ExportError, match=r"round 2 is not completed \(completed rounds: 1"):
        export_member(tiny_run, MEMBER, tmp_path / "b", round_index=2)
    with pytest.raises(ExportError, match="no adapter at round 0: it is the base model 'tiny-llama' itself"):
        export_member(tiny_run, MEMBER, tmp_path / "c", round_index=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="full exists and is not an empty directory"):
        export_member(tiny_run, MEMBER, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(ExportError, match="is not a run directory"):
        export_member(tmp_path, MEMBER, tmp_path / "d")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # nothing half-written left behind


def test_a_round_without_the_members_adapter_or_its_weights_is_named(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("eval*"))
    (adapter_dir(round_dir(copy, 1), "terse") / ADAPTER_WEIGHTS).unlink()
    with pytest.raises(ExportError, match=rf"member 'terse' at round 1: .*round_001/adapters/terse/{ADAPTER_WEIGHTS}"):
        export_member(copy, "terse", tmp_path / "a", round_index=1)
    shutil.rmtree(adapter_dir(round_dir(copy, 1), "playful"))
    with pytest.raises(ExportError, match=r"round 1 saved no adapter for 'playful' .* rounds that did: none"):
        export_member(copy, "playful", tmp_path / "b", round_index=1)
    assert locate(copy, "playful").round == 0  # by default: the member as configured


def test_the_command_line(tiny_run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["export", str(tiny_run), "--member", MEMBER, "--out", str(out), "--merged"])
    assert result.exit_code == 0, result.output
    assert "exported careful after round 1 (merged)" in result.output and (out / "model.safetensors").is_file()
    result = runner.invoke(app, ["export", str(tiny_run), "--member", "nobody", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown member 'nobody'" in result.output
