# Every target creates or reuses .venv by itself, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[sim,dev]'
	touch $(INSTALLED)

## demo: diagnose a bundled sample of real ECS output (a stalled deploy and an OOM-killed service)
demo: $(INSTALLED)
	$(BIN)/ecs-medic diagnose --input agent/samples/stalled-deploy.json

## test: the whole suite: lint, formatting, types, import layers, then every test
test: lint
	$(BIN)/pytest

## lint: ruff (lint and format), mypy --strict, import-linter contracts
lint: $(INSTALLED)
	$(BIN)/ruff check agent tests benchmarks
	$(BIN)/ruff format --check agent tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: throughput and cost benchmarks; prints tables of medians
bench: $(INSTALLED)
	$(BIN)/python benchmarks/bench_diagnose.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
