# Encore's tooling. `make run` and `make test` are the two commands a newcomer needs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit contract integration e2e lint typecheck bench system-deps

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Run Encore on the embedded default (SQLite + in-process worker) beside a simulated Shopify store.
run: $(STAMP)
	$(VENV)/bin/encore demo

# The whole test suite: PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set, SQLite otherwise.
test: $(STAMP) system-deps
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit
contract: $(STAMP)
	$(PY) -m pytest tests/contract
integration: $(STAMP)
	$(PY) -m pytest tests/integration
e2e: $(STAMP) system-deps
	$(PY) -m pytest tests/e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check app connectors tests $(wildcard bench)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP) system-deps
	$(PY) bench/intake.py

# Debian's chromium for the browser tests and wrk for the benchmark (never a downloaded browser).
system-deps:
	@bash tools/system-deps
