# Linli: `make run` serves the embedded default; `make test` runs every check and the suite.
# Both create .venv and install what they need when it is missing or stale.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test install services check lint fmt type arch schema schema-check migrations-check pytest \
        serve worker migrate seed revision bench reliability clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The embedded default: SQLite file, in-process queue, demo data, GraphiQL at /graphql.
run: install
	$(BIN)/linli serve

## Everything CI checks.
test: install services check pytest

## Start local PostgreSQL and Redis when they are installed but stopped.
services:
	@bash scripts/services.sh

check: lint type arch schema-check migrations-check

lint:
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

fmt:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

type:
	$(BIN)/mypy

arch:
	$(BIN)/lint-imports

schema: install
	$(BIN)/linli export-schema --output schema.graphql

schema-check:
	@$(BIN)/linli export-schema --output - | diff -u schema.graphql - \
		|| (echo "schema.graphql is stale: run 'make schema'" && exit 1)

migrations-check:
	$(BIN)/linli check-migrations

pytest:
	$(BIN)/pytest -n 2 -q

## Production stack (needs LINLI_DATABASE_URL and LINLI_REDIS_URL).
serve: install
	$(BIN)/linli serve
worker: install
	$(BIN)/linli worker
migrate: install
	$(BIN)/linli migrate
seed: install
	$(BIN)/linli seed

revision: install
	$(BIN)/alembic revision --autogenerate -m "$(m)"

bench: install services
	$(BIN)/python -m bench.registry
	$(BIN)/python -m bench.readpath
	$(BIN)/python -m bench.dispatch_floor
	$(BIN)/python -m bench.tickets --rate 20 --submit 400

## The reliability suite at full size; figures in bench/results/reliability.md (make test runs it small).
RACES := $(wildcard tests/*/test_races.py)
reliability: install services
	rm -f bench/results/reliability.jsonl
	LINLI_RELIABILITY=full $(BIN)/pytest -q -n 0 -p no:cacheprovider --timeout 1800 tests/reliability \
		--junitxml=bench/results/reliability-junit.xml; s1=$$?; \
	$(BIN)/pytest -q -n 2 -p no:cacheprovider $(RACES) --junitxml=bench/results/races-junit.xml; s2=$$?; \
	$(BIN)/python -m tests.reliability.report; s3=$$?; \
	test $$s1 -eq 0 -a $$s2 -eq 0 -a $$s3 -eq 0

clean:
	rm -rf $(VENV) linli.db linli.db-wal linli.db-shm .mypy_cache .ruff_cache .pytest_cache
