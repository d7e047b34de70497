# Two commands do all set-up on a machine with Python 3.11+:
#   make demo   creates .venv, installs replyguard, runs the demo (embedded Redis unless REDIS_URL is set)
#   make test   creates .venv, installs replyguard and test tools, runs the tests
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test models bench clean

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

# Rebuild the shipped default models from ../shared/datasets (deterministic).
models: $(STAMP)
	$(BIN)/replyguard build-defaults

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
