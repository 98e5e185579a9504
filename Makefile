PYTHON ?= python3
export PYTHON

.PHONY: setup test lint demo

setup:
	bash tools/setup_env.sh

# README command 2: set everything up, then run the whole test suite.
test: setup
	$(PYTHON) -m pytest -q tests

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .
