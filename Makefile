# The two commands of the README: `make serve` and `make test`. Both set up everything first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint setup postgres

setup: $(STAMP)

# Re-install whenever the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python scripts/fetch-graphiql-assets
	scripts/ensure-chromium
	touch $(STAMP)

serve: setup
	$(BIN)/agentcost serve

postgres:
	@scripts/ensure-postgres

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup postgres lint
	$(BIN)/pytest
