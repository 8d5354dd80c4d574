#!/usr/bin/env bash
# Fetch into .whl/ the wheels benchmarks/gpu_check.sh installs on a GPU machine without a package index: TRL and the
# packages it and sparta need beyond torch, transformers, peft and accelerate, at the versions of constraints.txt,
# for CPython 3.12 on x86-64 Linux (the GPU machine's Python). About 20 MB. Run from the repository root, on a
# machine with an index; .whl/ is ignored by git.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
pinned() { for name in "$@"; do grep -i "^${name}==" constraints.txt; done; }
mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $(pinned trl transformers peft datasets dill multiprocess pydantic pydantic_core annotated-types \
    typing-inspection typing_extensions regex fsspec huggingface_hub tokenizers safetensors)
ls -la .whl
