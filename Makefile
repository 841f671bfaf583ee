# The two commands of the README: `make run` and `make test`. Everything else is set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/mailhaven serve --dev

lint: $(VENV)/.installed
	$(BIN)/ruff check .

test: $(VENV)/.installed lint
	$(BIN)/pytest -n 2

bench: $(VENV)/.installed
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/memory.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
