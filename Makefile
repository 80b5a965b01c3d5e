# Entry points: `make run` (the example app on http://127.0.0.1:8000, in-memory backend)
# and `make test` (lint, format check, mypy, the whole pytest suite). Both set up .venv
# first; setup is redone only when pyproject.toml is newer than the stamp file.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.streamhub-setup

.PHONY: setup system-deps run test test-floor lint typecheck pytest bench bench-smoke

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# pip >= 25.1 installs PEP 735 dependency groups (`--group dev`).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e . --group dev
	touch $@

run: $(STAMP)
	$(PY) -m example_app

system-deps:
	scripts/system-deps

# Every check runs even if an earlier one fails; the target fails if any did.
test: $(STAMP) system-deps
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

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) system-deps
	$(PY) -m pytest

bench: $(STAMP) system-deps
	$(PY) -m benchmarks

bench-smoke: $(STAMP) system-deps
	$(PY) -m benchmarks --smoke
