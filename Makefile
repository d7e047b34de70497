# Two commands do all set-up on a machine with Python 3.11+:
#   make demo   creates .venv, installs replyguard, runs the demo (embedded Redis unless REDIS_URL is set)
#   make test   creates .venv, installs replyguard and test tools, runs the tests
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint models bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "replyguard needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/replyguard demo

test: $(STAMP)
	$(BIN)/python -m pytest

# The inner loop: everything but the tests marked slow, on TEST_WORKERS xdist workers; each uses its
# own Redis database, REDIS_URL's + its index, and flushes it (see README, Development).
TEST_WORKERS ?= 2
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS)

# ruff (lint rules and format, in pyproject.toml) and mypy. `ruff format .` fixes the layout.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Rebuild the shipped default models from ../shared/datasets: same versions (hashes of data and
# config) and the same predictions; the files themselves record the build time.
models: $(STAMP)
	$(BIN)/replyguard build-defaults

# Throughput and memory (a private redis-server), LLM guardrails (embedded Redis unless REDIS_URL is
# set: then that database is FLUSHED), then classifier quality (needs ../shared/datasets).
bench: $(STAMP)
	$(BIN)/python bench/run.py

# Stops the embedded Redis (if replyguard started one), then removes the virtualenv.
clean:
	-test -x $(BIN)/replyguard && $(BIN)/replyguard redis stop
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
