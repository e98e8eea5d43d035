# Two set-up commands, both working on a fresh machine:
#   make quickstart   the main job: install, then train, register, deploy, invoke and update three models
#   make test         install with test extras, then run the whole test suite
# and, while developing, `make test-fast`: the tests that start no process (a few seconds).
SHELL := /bin/bash
# pipefail: a failed pip install fails the target, though its output is filtered
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

$(BIN)/fleet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "installing modelfleet and its test extras into $(VENV) (a few minutes on a fresh machine: Ray, ONNX, MLflow)"
	$(BIN)/pip install --progress-bar off -e '.[test]' | grep -E --line-buffered '^(Collecting|Successfully|ERROR)'
	touch $@

.PHONY: install quickstart test test-fast bench
install: $(BIN)/fleet

quickstart: install
	$(BIN)/fleet quickstart

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/serving.py
