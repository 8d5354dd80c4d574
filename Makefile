# Two commands do all set-up from a fresh clone: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install simulate clean browser lint

install: $(STAMP)

# torch is pinned and installed first so that no other package can pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[llm,test,tracking,lm-eval]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sparta demo

# The report's browser test renders in headless Chromium (Debian packages).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }

# One torch thread: the tests' tiny models gain nothing from two, and their subprocesses then never oversubscribe.
test: $(STAMP) browser lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

simulate: $(STAMP)
	$(BIN)/sparta simulate --models 10 --rounds 8 --instructions 1000

clean:
	rm -rf $(VENV) runs .pytest_cache
