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

# The main job: build the phantom, import it as a prepared dataset, summarize it.
run: $(STAMP)
	$(BIN)/synthmed data phantom --out $(OUTDIR)/phantom-raw --force
	$(BIN)/synthmed data import $(OUTDIR)/phantom-raw/images --mask-dir $(OUTDIR)/phantom-raw/masks \
		--group-regex '^(case[0-9]+)_' --out $(OUTDIR)/phantom --force
	$(BIN)/synthmed data info $(OUTDIR)/phantom

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(OUTDIR) .pytest_cache .ruff_cache
