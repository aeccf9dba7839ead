# Two commands for a fresh clone: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := demo

# Use the active virtualenv if there is one; otherwise create .venv here.
ifdef VIRTUAL_ENV
BIN := $(VIRTUAL_ENV)/bin
else
BIN := $(CURDIR)/.venv/bin
endif
RCM_HOME ?= $(CURDIR)/.rcm
export RCM_HOME
export DAGSTER_HOME ?= $(RCM_HOME)/dagster

.PHONY: install demo test lint format bench dev check clean workers

AZURITE := .tools/azurite/node_modules/.bin/azurite-blob
AZURITE_VERSION := 3.37.0

install: $(BIN)/.rcm-installed

$(BIN)/.rcm-installed: pyproject.toml
	@test -x $(BIN)/python || python3 -m venv $(dir $(BIN))
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

# Azurite (the Azure Storage emulator) for the Azure tests; they skip without it outside CI.
$(AZURITE):
	@if command -v npm >/dev/null; then \
	  npm install --silent --no-save --no-audit --no-fund --prefix .tools/azurite \
	    azurite@$(AZURITE_VERSION); \
	else echo "npm not found: Azurite not installed, the Azure tests will be skipped"; fi

demo: install
	@if ! ls $(RCM_HOME)/sources/*.db >/dev/null 2>&1; then $(BIN)/rcm generate; fi
	$(BIN)/rcm run
	$(BIN)/rcm report

# Tests run on every core (pytest-xdist); each worker has its own sample data and servers.
test: install $(AZURITE)
	$(BIN)/pytest -n auto

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python bench/scale.py --scales 1 10 100
	$(BIN)/python bench/landing_parse.py

# The UI and the daemon (sensors, schedules, automation) on the project's definitions.
PORT ?= 3000
dev: install
	@mkdir -p $(DAGSTER_HOME)
	VIRTUAL_ENV=$(abspath $(BIN)/..) PATH=$(BIN):$$PATH $(BIN)/dg dev -h 127.0.0.1 -p $(PORT)

# N Celery workers for `rcm run --executor celery` (broker RCM_CELERY_BROKER, default RabbitMQ on
# localhost; the instance must be shared, e.g. deploy/dagster.yaml). One process each, solo pool:
# delta-rs does not survive a fork. Ctrl-C stops them all.
N ?= 2
workers: install
	@trap 'kill 0' INT TERM; \
	for i in $$(seq 1 $(N)); do $(BIN)/rcm worker --name "rcm-$$i@%h" & done; wait

check: install
	VIRTUAL_ENV=$(abspath $(BIN)/..) $(BIN)/dg check defs

clean:
	rm -rf $(RCM_HOME)
