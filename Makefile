# Encore's tooling. `make run` and `make test` are the two commands a newcomer needs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit contract integration e2e lint typecheck bench system-deps plugin journey-messages audit drills load-drill

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

# Known vulnerabilities in the installed dependencies (PyPI's advisory database; needs the network).
audit: $(STAMP)
	$(VENV)/bin/pip-audit --strict --skip-editable --progress-spinner off

# The fault drills alone, with their figures (they run in `make test` too; they need DATABASE_URL and REDIS_URL).
drills: $(STAMP)
	$(PY) -m pytest tests/drills -s

# Ten minutes of webhooks, widget reads and a busy dispatcher on the real tiers (PostgreSQL and Redis).
load-drill: $(STAMP)
	$(PY) bench/load.py --minutes 10 --rate 10 --widget-rate 50 --backlog 5000

bench: $(STAMP) system-deps
	$(PY) bench/intake.py
	$(PY) bench/history_import.py
	$(PY) bench/dispatch.py
	$(PY) bench/ledger.py
	$(PY) bench/widget.py
	$(PY) bench/analytics.py

# The WordPress companion plugin as an installable zip: dist/encore-for-woocommerce.zip.
plugin:
	python3 tools/build_plugin.py

# The journeys' message catalogs: extract the msgids of the default templates (and app/rendering's Python) with
# Jinja's extractor, then update app/rendering/translations/{en,ko,ja}/LC_MESSAGES/journeys.po. Translate what
# is new; tests/unit/test_rendering_catalogs.py fails while a ko or ja msgstr is missing.
JOURNEYS := app/rendering
journey-messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F $(JOURNEYS)/babel.cfg --input-dirs=$(JOURNEYS) --ignore-dirs='.* __pycache__' \
		-o $(JOURNEYS)/translations/journeys.pot --project=Encore --version=0.1.0 --add-location=file \
		--sort-by-file -c Translators: -w 120
	$(VENV)/bin/pybabel update -D journeys -i $(JOURNEYS)/translations/journeys.pot -d $(JOURNEYS)/translations \
		--ignore-obsolete --no-fuzzy-matching -w 120

# Debian's chromium for the browser tests, wrk for the benchmark (never a downloaded browser), and php-cli,
# php-mysql and wordpress for the plugin's tests (no web server).
system-deps:
	@bash tools/system-deps
