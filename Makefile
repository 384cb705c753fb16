# Two plain entry points: `make run` (set up .venv, run the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.synthmed-installed
OUTDIR ?= quickstart

.PHONY: setup run test lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The main job: the whole pipeline on the built-in phantom (import -> train -> generate ->
# evaluate -> utility -> report) in $(OUTDIR)/run; a second `make run` skips finished stages.
run: $(STAMP)
	$(BIN)/synthmed run configs/quickstart.yaml --run-dir $(OUTDIR)/run

# The browser test needs headless Chromium: installed here when missing (skips if it cannot be).
test: $(STAMP)
	-bash .ci/install-chromium.sh
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(OUTDIR) artifacts .pytest_cache .ruff_cache
