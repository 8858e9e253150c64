# Everything a fresh machine needs, from the project's own files. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
# Two workers (pytest-xdist): the suite is I/O-bound enough to use both cores.
PYTEST_ARGS ?= -n 2

.PHONY: run install install-dev chromium migrate test test-postgres e2e-remote lint format serve-gunicorn clean wrk bench bench-smoke reliability attack-production

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Stamp files re-run pip only when the requirements change.
$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

# Browser tests drive Debian's Chromium; Playwright cannot download its own browser here.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq chromium >/dev/null; }

migrate: install
	$(BIN)/flask --app wsgi db upgrade

## make run: the site on http://127.0.0.1:5000 (sandbox Stripe, SQLite, no keys needed)
run: migrate
	PUBLIC_BASE_URL="$${PUBLIC_BASE_URL:-http://127.0.0.1:$(PORT)}" \
	  $(BIN)/flask --app wsgi run --host 127.0.0.1 --port $(PORT)

## make test: the whole suite, browser tests included
test: install-dev chromium
	$(BIN)/pytest $(PYTEST_ARGS)

## make test-postgres: the whole suite on a fresh, uniquely named PostgreSQL database, dropped
## afterwards (PG_SERVER, default postgres@127.0.0.1:5432; the server is shared: nothing else is
## dropped)
test-postgres: install-dev chromium
	$(BIN)/python tests/pg_database.py --prefix test -- $(BIN)/pytest $(PYTEST_ARGS)

## make e2e-remote BASE_URL=http://host:port: the browser tests against a site someone started
## in sandbox mode (tests marked in_process are skipped; see README "Browser tests")
e2e-remote: install-dev chromium
	@test -n "$(BASE_URL)" || { echo "usage: make e2e-remote BASE_URL=http://host:port"; exit 2; }
	$(BIN)/pytest tests/e2e --base-url "$(BASE_URL)"

## make reliability: concurrency, faults, security and bad input on a fresh, uniquely named
## PostgreSQL database (on RELIABILITY_DATABASE_URL's server, default postgres@127.0.0.1:5432),
## dropped afterwards; prints two tables: the figures, and each group of attacks tried and refused
reliability: install-dev
	$(BIN)/python tests/reliability/report.py

## make attack-production: a production-configured gunicorn (4 workers, Redis limits, 1 trusted
## proxy, PostgreSQL) attacked with forged hosts, password guessing and APP_ENV=Production
attack-production: install-dev
	$(BIN)/python tests/reliability/production_site.py

# The load generator of the benchmarks, from Debian like chromium.
wrk:
	@command -v wrk >/dev/null || { \
	  echo "Installing Debian's wrk for the benchmarks"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq wrk >/dev/null; }

## make bench: load and latency as ratios to /healthz under gunicorn; prints the table and writes
## bench/results.local.md (make bench RECORD=1: the tracked bench/results.md); fails if a target
## is missed (PostgreSQL at 127.0.0.1:5432 if reachable, under a random name, else SQLite)
bench: install wrk
	$(BIN)/python bench/run.py $(if $(RECORD),--record)

## make bench-smoke: the same harness, two seconds a row and no targets (CI)
bench-smoke: install wrk
	$(BIN)/python bench/run.py --smoke

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .mypy_cache
