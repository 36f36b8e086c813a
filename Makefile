# The README's two commands: `make demo` (the main job) and `make test` (what CI runs).
# Each creates .venv when it is missing; torch==2.13.0 is installed first so that pip never
# resolves a CUDA build of torch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
METALEARN_DATA ?= ../shared/datasets
# absolute, so that tests running commands in other folders find the same data root
override METALEARN_DATA := $(abspath $(METALEARN_DATA))
export METALEARN_DATA
# OpenMP threads that spin while idle slow a shared 2-core machine down many times over.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,rl,plot]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/metalearn demo --data.root $(METALEARN_DATA)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -m "not gpu"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
