# Entry points: `make run` (the example app on http://127.0.0.1:8000, in-memory backend)
# and `make test` (lint, format check, mypy, the whole pytest suite). Both set up .venv
# first; setup is redone only when pyproject.toml is newer than the stamp file.
#
# `make node-deps` installs the npm packages of tests/ai_sdk_client (the Vercel AI SDK clients
# the tests drive) with `npm ci` from the committed lockfile; `make test` and `make pytest` run
# it first, and redo it only when the lockfile is newer than the install.
#
# `make quickstart` serves docs/examples/quickstart.py on QUICKSTART_PORT (8010); `make demo`
# runs two instances of the example app on DEMO_PORTS (8001 8002) with a private Redis
# (scripts/demo.py), and `make demo-worker` the same with a Taskiq worker generating the
# answers; `make docs` serves the documentation site on DOCS_PORT (8020).
#
# VENV=/path/to/venv uses an existing virtualenv as it is: make neither creates nor updates
# it (it needs the package and the dev group, `pip install -e . --group dev`, and for
# `make docs` the docs group).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.streamhub-setup
DOCS_STAMP := $(VENV)/.streamhub-docs
QUICKSTART_PORT ?= 8010
DEMO_PORTS ?= 8001 8002
DOCS_PORT ?= 8020

ifeq ($(VENV),.venv)
SETUP := $(STAMP)
DOCS_SETUP := $(DOCS_STAMP)
else
SETUP :=
DOCS_SETUP :=
endif

.PHONY: setup system-deps node-deps run quickstart demo demo-worker docs test test-floor lint \
	typecheck pytest bench bench-smoke

setup: $(SETUP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# pip >= 25.1 installs PEP 735 dependency groups (`--group dev`).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e . --group dev
	touch $@

$(DOCS_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet --group docs
	touch $@

run: $(SETUP)
	$(PY) -m example_app

quickstart: $(SETUP)
	$(PY) -m uvicorn quickstart:app --app-dir docs/examples --port $(QUICKSTART_PORT)

demo: $(SETUP)
	$(PY) scripts/demo.py $(DEMO_PORTS)

demo-worker: $(SETUP)
	$(PY) scripts/demo.py --worker $(DEMO_PORTS)

docs: $(DOCS_SETUP)
	$(PY) -m mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

system-deps:
	scripts/system-deps

NODE_CLIENT := tests/ai_sdk_client
NODE_STAMP := $(NODE_CLIENT)/node_modules/.package-lock.json

node-deps: $(NODE_STAMP)

# npm writes node_modules/.package-lock.json on every install, so it is the stamp.
$(NODE_STAMP): $(NODE_CLIENT)/package-lock.json $(NODE_CLIENT)/package.json | system-deps
	npm ci --prefix $(NODE_CLIENT) --no-audit --no-fund

# Every check runs even if an earlier one fails; the target fails if any did.
test: $(SETUP) system-deps node-deps
	@failed=""; \
	$(VENV)/bin/ruff check . || failed="$$failed ruff-check"; \
	$(VENV)/bin/ruff format --check . || failed="$$failed ruff-format"; \
	$(VENV)/bin/mypy || failed="$$failed mypy"; \
	$(PY) -m pytest || failed="$$failed pytest"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi

# The FastAPI layer's tests on the oldest fastapi, sse-starlette and anyio that
# pyproject.toml admits, in a virtualenv of their own. Only the tools those tests import
# are installed: the dev group's openai needs a newer anyio.
FLOOR_VENV := .venv-floor
FLOOR_TESTS := tests/test_integration.py tests/test_routes.py tests/test_stalled_client.py \
	tests/test_http.py tests/test_bad_input.py

test-floor: system-deps
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet -c .ci/floor-constraints.txt -e . \
		pytest pytest-timeout httpx httpx-sse uvicorn
	$(FLOOR_VENV)/bin/python -m pytest -p no:cacheprovider $(FLOOR_TESTS)

lint: $(SETUP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(SETUP)
	$(VENV)/bin/mypy

pytest: $(SETUP) system-deps node-deps
	$(PY) -m pytest

bench: $(SETUP) system-deps
	$(PY) -m benchmarks

bench-smoke: $(SETUP) system-deps
	$(PY) -m benchmarks --smoke
