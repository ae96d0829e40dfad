# kraty-bridge: `make run` starts the embedded stack; `make test` runs the tests. Nothing else to install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Re-install only when a requirements file is newer than its stamp.
STAMP := $(VENV)/.requirements.stamp
DEV_STAMP := $(VENV)/.requirements-dev.stamp
PYTEST_ARGS ?=

.PHONY: help run test bench clean
.DEFAULT_GOAL := help

help:
	@echo "make run    start web + worker + Kraty emulator + private Redis + SQLite (PORT=8000, KRATY_EMULATOR_PORT=8100)"
	@echo "make test   run the tests (PYTEST_ARGS='-k name -x' to pass options to pytest)"
	@echo "make bench  run the benchmarks"
	@echo "make clean  remove instance/ and .venv"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(PY)
	$(PIP) install -r requirements.txt
	@touch $@

$(DEV_STAMP): requirements-dev.txt requirements.txt | $(PY)
	$(PIP) install -r requirements-dev.txt
	@touch $@ $(STAMP)

run: $(STAMP)
	exec $(PY) -m config.embedded

test: $(DEV_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(DEV_STAMP)
	$(PY) -m bench

clean:
	rm -rf instance $(VENV)
