# The two commands a user needs: `make demo` and `make test`. Both build the venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-unit lint venv serve clean browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Runs one complete repair through the service on its embedded default.
demo: $(VENV)/.installed
	$(PY) -m repairctl demo

# The whole suite: format, lint, types, then every test (real Postgres, Redis, processes,
# the dashboard in headless Chromium).
test: $(VENV)/.installed lint browser
	$(PY) -m pytest

# The browser the dashboard tests drive: Debian's chromium, installed when missing
# (Playwright drives it; no browser is downloaded by Playwright itself).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Fast unit tests only (no database, broker or subprocesses).
test-unit: $(VENV)/.installed
	$(PY) -m pytest -m "not integration and not e2e and not slow"

lint: $(VENV)/.installed
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy api worker repair_core repairctl bench

serve: $(VENV)/.installed
	$(PY) -m repairctl serve

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
