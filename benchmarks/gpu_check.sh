#!/usr/bin/env bash
# The GPU path, end to end (benchmarks/gpu_check.py): one SPARTA round of 4 bf16 members of a random ~1B Llama on
# one GPU. Made for a machine that has torch, transformers, peft and accelerate but no package index: the packages it
# lacks travel as wheels in .whl/ (benchmarks/gpu_wheels.sh fetches them, on a machine with an index), and pip
# installs from there only what the machine does not already satisfy. Run from the repository root:
#
#     bash benchmarks/gpu_check.sh                   # on the GPU machine: about 3-4 minutes on one H200 (budget 8)
#     bash benchmarks/gpu_check.sh --tiny            # a dry run of the same code on a CPU, with a 2-layer model
#
# Extra arguments go to gpu_check.py (--json PATH, --instructions N, --max-new-tokens N, --peak-tflops F).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    # only what is missing or too old: the machine's own torch (and CUDA) stay untouched
    "$PYTHON" -m pip install -q --no-index --find-links .whl --no-cache-dir \
        trl datasets pydantic "transformers==$(sed -n 's/^transformers==//p' constraints.txt)" \
        "peft==$(sed -n 's/^peft==//p' constraints.txt)"
fi
"$PYTHON" -c 'import torch, transformers, trl, peft, accelerate, datasets, pydantic
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "| transformers", transformers.__version__,
      "| trl", trl.__version__, "| peft", peft.__version__, "| accelerate", accelerate.__version__)'
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec timeout 480 "$PYTHON" benchmarks/gpu_check.py "$@"
