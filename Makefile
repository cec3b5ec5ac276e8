# Trialake: every command a user or CI needs. The environment lives in .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: setup demo test bench bench-tools deploy worker server clean

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

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# Benchmarks need the reference tools they are compared against (Debian packages).
bench-tools:
	@command -v dcm2niix >/dev/null && command -v dcmdump >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq dcm2niix dcmtk >/dev/null; }

bench: setup bench-tools
	$(BIN)/python -m bench

clean:
	rm -rf $(DEMO_DIR) .pytest_cache build *.egg-info src/*.egg-info
