# The front door. `make run` starts everything; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit bench lint fmt clean schemas

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The real @segment/analytics-next for the browser test (tests/e2e/test_browser_tracking.py),
# from the committed lockfile; the test's fixture runs the same `npm ci` when this was not made.
BROWSER_SDK := tests/e2e/browser_sdk
$(BROWSER_SDK)/node_modules/.package-lock.json: $(BROWSER_SDK)/package-lock.json
	cd $(BROWSER_SDK) && (npm ci --no-audit --no-fund && test -x node_modules/.bin/esbuild) \
		|| (npm ci --no-audit --no-fund && test -x node_modules/.bin/esbuild)  # once, npm ci left esbuild out

run: $(STAMP)  ## start broker, Postgres, the four services and demo traffic
	$(VENV)/bin/leadflow dev

test: $(STAMP) $(BROWSER_SDK)/node_modules/.package-lock.json  ## unit, integration (real broker + Postgres) and end-to-end tests
	$(PY) -m pytest -q

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)  ## throughput and latency against ceilings measured in the same run
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schemas: $(STAMP)  ## regenerate docs/schemas from the event models
	$(VENV)/bin/leadflow schemas export docs/schemas

clean:
	rm -rf .leadflow .pytest_cache
