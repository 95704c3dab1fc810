# The one entry point. Every target creates or refreshes .venv from requirements.txt when needed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CUSTOMERS ?= 1000000
WAREHOUSE ?=

export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: help install demo ui test test-fast lint typecheck bench schema clean stack-test

help:
	@echo "make demo        generate sample data, run the nightly DAG through Airflow, print the summary"
	@echo "make ui          Airflow's UI on the demo's night (after make demo): tasks and their logs"
	@echo "make test        the test suite (SQLite always; PostgreSQL and MariaDB when reachable)"
	@echo "make lint        ruff + mypy"
	@echo "make stack-test  the compose topology as processes: Airflow (CeleryExecutor), PostgreSQL, Redis, simulator"
	@echo "make bench       time each stage on CUSTOMERS (default 1,000,000) [WAREHOUSE=URL]"
	@echo "make bench-inbox the inbox service under wrk vs a bare-handler floor, CUSTOMERS customers [WAREHOUSE=URL]"
	@echo "make schema      regenerate sql/schema.<dialect>.sql and marketing/schema/*.schema.json"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/campaigns-dev demo --customers $${DEMO_CUSTOMERS:-20000}

ui: $(STAMP)
	$(BIN)/campaigns-dev ui $(if $(PORT),--port $(PORT),)

test: $(STAMP)
	CONSOLE_SCREENSHOTS=$${CONSOLE_SCREENSHOTS:-reports/console-screenshots} \
		$(BIN)/python -m pytest -q -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not airflow" $(PYTEST_ARGS)

stack-test: $(STAMP)
	$(BIN)/campaigns-dev stack-test --workdir .stack

lint: $(STAMP)
	$(BIN)/ruff check plugins dags tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/campaigns-dev bench --customers $(CUSTOMERS) $(if $(WAREHOUSE),--warehouse $(WAREHOUSE),) $(BENCH_ARGS)

bench-inbox: $(STAMP)
	@command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk) || \
		{ echo "bench-inbox needs wrk and apt-get install -y wrk failed: install it as root, or put wrk on PATH" >&2; exit 1; }
	$(BIN)/campaigns-dev bench-inbox --customers $(CUSTOMERS) $(if $(WAREHOUSE),--warehouse $(WAREHOUSE),)

schema: $(STAMP)
	for d in sqlite postgresql mysql; do $(BIN)/campaigns schema --dialect $$d > sql/schema.$$d.sql; done
	$(BIN)/campaigns schema --json-schemas marketing/schema

clean:
	rm -rf .demo bench .airflow reports .pytest_cache .mypy_cache .ruff_cache
