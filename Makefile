# Every target creates or reuses .venv by itself, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint bench clean deploy-tools deploy-check image

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[sim,html,dev]'
	touch $(INSTALLED)

## demo: the agent against the embedded simulated ECS world, every scenario, acting (--enforce)
demo: $(INSTALLED)
	$(BIN)/ecs-medic demo --enforce

## test: the whole suite: lint, formatting, types, import layers, then every test
test: lint
	$(BIN)/pytest

## lint: ruff (lint and format), mypy --strict, import-linter contracts
lint: $(INSTALLED)
	$(BIN)/ruff check agent tests benchmarks
	$(BIN)/ruff format --check agent tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: throughput and cost benchmarks (tables of medians), and how fast each scenario heals
bench: $(INSTALLED)
	@status=0; for bench in diagnose world agent scale fleet healing; do \
	  $(BIN)/python benchmarks/bench_$$bench.py || status=1; echo; \
	done; exit $$status

## deploy-tools: install the validators for the deployment artifacts into .tools (pinned, idempotent)
deploy-tools:
	bash deploy/ci/install-tools.sh

## deploy-check: validate Dockerfile, CloudFormation, IAM, Helm chart, alerts and dashboard with the real tools
deploy-check: $(INSTALLED) deploy-tools
	$(BIN)/pytest tests/deploy

## image: build the image without a Docker engine, then run it (needs root; about a minute)
image: $(INSTALLED)
	bash deploy/ci/build-image.sh

clean:
	rm -rf $(VENV) .tools .mypy_cache .pytest_cache .ruff_cache .hypothesis
