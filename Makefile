PYTHON ?= python3
export PYTHON

.PHONY: setup setup-runtime test lint demo

setup:
	bash tools/setup_env.sh

setup-runtime:
	WITH_DEV=0 bash tools/setup_env.sh

# README command 1: set up (Paddle CPU, this package, Debian's Fashion-MNIST; no torch), then train -> evaluate ->
# export -> predict on Fashion-MNIST. Output in output/fashion_mnist_demo/.
demo: setup-runtime
	$(PYTHON) tools/demo.py

# README command 2: set everything up, then run the whole test suite.
test: setup
	$(PYTHON) -m pytest -q tests

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .
