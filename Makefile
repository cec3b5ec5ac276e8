# Trialake: every command a user or CI needs. The environment lives in .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: setup lock demo test test-slow test-tools bench bench-tools volumetry-survey deploy worker server stack stack-tools stack-down stack-test clean

setup: $(STAMP)

# Both locks carry a sha256 of every file: requirements.lock is the runtime, requirements-dev.lock
# adds the test and dev tools with the very same runtime pins. `make setup` installs both and the
# checkout in editable mode (built by the dev lock's setuptools); the worker image sets
# SETUP_LOCKS=requirements.lock SETUP_INSTALL=. (runtime only; the package built in an isolated environment).
SETUP_LOCKS ?= requirements.lock requirements-dev.lock
SETUP_INSTALL ?= --no-build-isolation -e .

# Re-installs only when a lock file or the project metadata change (idempotent).
$(STAMP): $(SETUP_LOCKS) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet --require-hashes $(addprefix -r ,$(SETUP_LOCKS))
	$(BIN)/python -m pip install --quiet --no-deps $(SETUP_INSTALL)
	touch $(STAMP)

# Re-resolves both locks from pyproject.toml, keeping every pin the locks already have that still
# fits (uv, pinned in the dev lock); `make lock UPGRADE="--upgrade-package NAME"` moves one.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --custom-compile-command "make lock" \
	  $(UPGRADE) -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --extra dev -c requirements.lock --generate-hashes \
	  --custom-compile-command "make lock" $(UPGRADE) -o requirements-dev.lock

demo: setup
	$(BIN)/trialake demo --out $(DEMO_DIR)

# The tests double-program the endpoint statistics in R (Debian r-base-core), run a real
# Orthanc with its DICOMweb plugin as the PACS (Debian orthanc, orthanc-dicomweb) and render the
# Data Docs in headless Chromium with the network off (Debian chromium).
test-tools:
	@command -v Rscript >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends r-base-core >/dev/null; }
	@command -v Orthanc >/dev/null && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null; }
	@command -v chromium >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

test: setup test-tools
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# The larger cases (`-m slow`): many seeds, the 12-subject trial, the 100-subject demo, DIMSE, the
# big phantoms. Run nightly, not on every change (about an hour on 2 cores).
test-slow: setup test-tools bench-tools
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m slow; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# Benchmarks need the reference tools they are compared against (Debian packages).
bench-tools:
	@command -v dcm2niix >/dev/null && command -v dcmdump >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq dcm2niix dcmtk >/dev/null; }

bench: setup bench-tools test-tools
	$(BIN)/python -m bench

# Volumetry on random phantom variants: within targets / flagged / refused / quiet, per kind and grid.
volumetry-survey: setup
	$(BIN)/python -m bench.volumetry_survey

# Prefect: `make server` (local, SQLite under $PREFECT_HOME), `make deploy`, `make worker`.
# Every variable is described in infra/README.md.
server: setup
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/prefect server start --host 127.0.0.1

deploy: setup
	@test -n "$$PREFECT_API_URL" || { echo "make deploy: PREFECT_API_URL is not set; point it at a Prefect server, e.g. PREFECT_API_URL=http://127.0.0.1:4200/api (start one with 'make server')" >&2; exit 2; }
	$(BIN)/prefect work-pool inspect trialake >/dev/null 2>&1 || $(BIN)/prefect work-pool create trialake --type process
	schedule=$$($(BIN)/python -c 'import sys; from trialake.config import load_trial_config; c = load_trial_config(sys.argv[1] or None); print(c.timezone); print(c.nightly_cron)' "$$TRIALAKE_CONFIG") || exit 2; \
	TRIALAKE_TIMEZONE="$$(echo "$$schedule" | sed -n 1p)" \
	TRIALAKE_CRON="$$(echo "$$schedule" | sed -n 2p)" \
	TRIALAKE_LANDING="$${TRIALAKE_LANDING:-$(CURDIR)/$(DEMO_DIR)/landing}" \
	TRIALAKE_LAKE="$${TRIALAKE_LAKE:-$(CURDIR)/$(DEMO_DIR)/lake}" \
	TRIALAKE_PACS="$${TRIALAKE_PACS:-}" \
	TRIALAKE_TASK_RUNNER="$${TRIALAKE_TASK_RUNNER:-thread}" \
	  $(BIN)/prefect deploy --no-prompt --all --prefect-file infra/prefect.yaml

worker: setup
	@test -n "$$PREFECT_API_URL" || { echo "make worker: PREFECT_API_URL is not set; point it at the Prefect server the deployments are registered with" >&2; exit 2; }
	TRIALAKE_HOME="$${TRIALAKE_HOME:-$(CURDIR)}" $(BIN)/prefect worker start --pool trialake --type process

# The production topology on this machine, as processes (infra/stack.py): PostgreSQL, the Prefect
# server on it, SeaweedFS as S3, a Dask scheduler and two workers, the deployments, a Prefect worker.
STACK_DIR ?= $(CURDIR)/.stack

stack-tools:
	@test -x "$$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | tail -n 1)" || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }

stack: setup stack-tools
	$(BIN)/python infra/stack.py up $(STACK_DIR)

stack-down:
	$(BIN)/python infra/stack.py down $(STACK_DIR)

# A nightly run through the Prefect API on a stack of its own (landing and lake on SeaweedFS, Dask).
stack-test: setup stack-tools
	$(BIN)/python -m pytest -q -m slow tests/test_stack.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache build *.egg-info src/*.egg-info
