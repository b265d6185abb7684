# The call center's commands. Each target does its own set-up (scripts/setup.sh): a fresh
# machine needs only `make run` or `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup venv services browser run demo test check lint format typecheck bench clean

help:
	@echo "make run    - set up, migrate the database and run the call center"
	@echo "make demo   - simulated callers and agents in a call center of their own (own database,"
	@echo "              Asterisk and MQTT topics; yours is not touched); prints the wallboard login"
	@echo "make test   - set up and run the whole test suite"
	@echo "make check  - ruff check, ruff format --check, mypy --strict"
	@echo "make bench  - run the benchmarks; figures in bench/results.json"

venv:
	@scripts/setup.sh venv

services:
	@scripts/setup.sh services

setup:
	@scripts/setup.sh all

# Chromium for the wallboard's browser tests, where it can be installed (never fails).
browser:
	@scripts/setup.sh browser

run: setup
	$(BIN)/callcenter config init --if-missing
	$(BIN)/callcenter db upgrade
	$(BIN)/callcenter run

# The demo's own database, Asterisk directory, ports and MQTT prefix: nothing of the operator's
# installation is created or changed (callcenter/simulate/demo.py).
demo: setup
	$(BIN)/python -m callcenter.simulate.demo

test: setup
	@scripts/setup.sh browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/lint_dialplans.py

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache var test-artifacts
