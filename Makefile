# Trialake: every command a user or CI needs. The environment lives in .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: setup demo test test-tools bench bench-tools deploy worker server clean

setup: $(STAMP)

# Re-installs only when the lock file or the project metadata change (idempotent).
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

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

# Benchmarks need the reference tools they are compared against (Debian packages).
bench-tools:
	@command -v dcm2niix >/dev/null && command -v dcmdump >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq dcm2niix dcmtk >/dev/null; }

bench: setup bench-tools test-tools
	$(BIN)/python -m bench

# Prefect: `make server` (local, SQLite under $PREFECT_HOME), `make deploy`, `make worker`.
# Every variable is described in infra/README.md.
server: setup
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/prefect server start --host 127.0.0.1

deploy: setup
	@test -n "$$PREFECT_API_URL" || { echo "make deploy: PREFECT_API_URL is not set; point it at a Prefect server, e.g. PREFECT_API_URL=http://127.0.0.1:4200/api (start one with 'make server')" >&2; exit 2; }
	$(BIN)/prefect work-pool inspect trialake >/dev/null 2>&1 || $(BIN)/prefect work-pool create trialake --type process
	tz=$$($(BIN)/python -c 'import sys; from trialake.config import load_trial_config; print(load_trial_config(sys.argv[1] or None).timezone)' "$$TRIALAKE_CONFIG") || exit 2; \
	TRIALAKE_TIMEZONE="$$tz" \
	TRIALAKE_LANDING="$${TRIALAKE_LANDING:-$(CURDIR)/$(DEMO_DIR)/landing}" \
	TRIALAKE_LAKE="$${TRIALAKE_LAKE:-$(CURDIR)/$(DEMO_DIR)/lake}" \
	TRIALAKE_PACS="$${TRIALAKE_PACS:-}" \
	  $(BIN)/prefect deploy --no-prompt --all --prefect-file infra/prefect.yaml

worker: setup
	@test -n "$$PREFECT_API_URL" || { echo "make worker: PREFECT_API_URL is not set; point it at the Prefect server the deployments are registered with" >&2; exit 2; }
	TRIALAKE_HOME="$${TRIALAKE_HOME:-$(CURDIR)}" $(BIN)/prefect worker start --pool trialake --type process

clean:
	rm -rf $(DEMO_DIR) .pytest_cache build *.egg-info src/*.egg-info
