# Two commands for a newcomer: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL := $(CURDIR)/.local
export DAGSTER_HOME ?= $(LOCAL)/dagster_home

.PHONY: install system-deps test lint format demo up clean lock images stack-up stack-down deploy-test deploy-deps

# Pinned by constraints.txt (`make lock`), like the image and CI.
$(BIN)/ingest: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(BIN)/ingest

# Debian packages first (python3-venv for the virtualenv; the test bed's servers): a no-op when present.
install: system-deps $(BIN)/ingest

# Debian packages the test bed starts (MariaDB, Redis, PostgreSQL); needs root.
system-deps:
	bash .ci/system-deps.sh

test: install
	$(BIN)/pytest -q --durations=30

# Style, then the import contracts of pyproject's [tool.importlinter] (the walls between packages).
lint: install
	$(BIN)/ruff check ingestion_pipelines ingestion_pipelines_tests benchmarks
	$(BIN)/ruff format --check ingestion_pipelines ingestion_pipelines_tests benchmarks
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format ingestion_pipelines ingestion_pipelines_tests benchmarks
	$(BIN)/ruff check --fix ingestion_pipelines ingestion_pipelines_tests benchmarks

clean:
	rm -rf $(LOCAL)

# The whole stack on embedded defaults (SQLite, no Redis) against the bundled replay.
demo: install
	$(BIN)/python -m ingestion_pipelines.demo.run --replay

# The same stack against the live sources.
up: install
	$(BIN)/python -m ingestion_pipelines.demo.run

# Re-pin constraints.txt after changing pyproject.toml's dependencies.
lock: install
	$(BIN)/python docker/lock.py $(BIN)/python

# Containers (docs/deployment.md). Podman, runc, debootstrap, podman-compose: `make deploy-deps`.
deploy-deps:
	bash .ci/system-deps.sh --deploy

# The Debian base, infra and project images, built here without a registry.
images: install deploy-deps
	bash docker/images.sh

# The production topology on this host (secrets in docker/.env, from docker/.env.example).
stack-up: images
	bash docker/stack.sh up

stack-down:
	bash docker/stack.sh down

# Build, bring up, prove and take down the whole stack (also a phase of .ci/run).
deploy-test: install deploy-deps
	$(BIN)/python docker/deploy_test.py
