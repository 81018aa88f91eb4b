# The two commands a newcomer needs: `make run` and `make test`. Only Python is required.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench bench-read-models bench-sweep clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/invoice-ledger migrate
	$(BIN)/invoice-ledger serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check service tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.ingest $(BENCH_ARGS)

bench-read-models: $(VENV)/.installed-dev
	$(BIN)/python -m bench.read_models $(BENCH_ARGS)

bench-sweep: $(VENV)/.installed-dev
	$(BIN)/python -m bench.sweep $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
