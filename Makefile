# Two commands for a newcomer: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL := $(CURDIR)/.local
export DAGSTER_HOME ?= $(LOCAL)/dagster_home

.PHONY: install system-deps test lint format demo up clean

$(BIN)/ingest: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/ingest

# Debian packages first (python3-venv for the virtualenv; the test bed's servers): a no-op when present.
install: system-deps $(BIN)/ingest

# Debian packages the test bed starts (MariaDB, Redis, PostgreSQL); needs root.
system-deps:
	bash .ci/system-deps.sh

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check ingestion_pipelines ingestion_pipelines_tests benchmarks
	$(BIN)/ruff format --check ingestion_pipelines ingestion_pipelines_tests benchmarks

format: install
	$(BIN)/ruff format ingestion_pipelines ingestion_pipelines_tests benchmarks
	$(BIN)/ruff check --fix ingestion_pipelines ingestion_pipelines_tests benchmarks

clean:
	rm -rf $(LOCAL)

# The whole stack on embedded defaults (SQLite, no Redis) against the bundled replay.
demo: install
	$(BIN)/python -m ingestion_pipelines.demo --replay

# The same stack against the live sources.
up: install
	$(BIN)/python -m ingestion_pipelines.demo
