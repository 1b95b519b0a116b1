# utd-stream: every set-up step a fresh clone needs. `make demo` and `make test` do it all.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Pinned media server, built from source with the Go toolchain, cached outside the clone
# (CI gets a clean clone but keeps $HOME), then copied into the project-local tools dir.
LIVEKIT_VERSION := v1.13.5
LIVEKIT_CACHE := $(HOME)/.cache/utd-stream/livekit-server-$(LIVEKIT_VERSION)
TOOLS := .tools/bin
LIVEKIT_BIN := $(TOOLS)/livekit-server
export LIVEKIT_SERVER_BIN := $(abspath $(LIVEKIT_BIN))

.PHONY: install tools test test-fast demo diagrams bench typecheck clean

$(STAMP): pyproject.toml setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,livekit,engine]'
	touch $(STAMP)

install: $(STAMP)

tools: $(LIVEKIT_BIN)

$(LIVEKIT_BIN):
	mkdir -p $(TOOLS)
	if [ ! -x "$(LIVEKIT_CACHE)/livekit-server" ]; then \
	  command -v go >/dev/null || { echo "ERROR: Go is required to build livekit-server" >&2; exit 1; }; \
	  echo "building livekit-server $(LIVEKIT_VERSION) (first time only, cached in $(LIVEKIT_CACHE))"; \
	  mkdir -p "$(LIVEKIT_CACHE)/gobin"; \
	  GOBIN="$(LIVEKIT_CACHE)/gobin" GOFLAGS=-mod=mod go install \
	    github.com/livekit/livekit-server/cmd/server@$(LIVEKIT_VERSION) \
	    || { echo "ERROR: go install of livekit-server $(LIVEKIT_VERSION) failed" >&2; exit 1; }; \
	  mv "$(LIVEKIT_CACHE)/gobin/server" "$(LIVEKIT_CACHE)/livekit-server"; \
	fi
	cp "$(LIVEKIT_CACHE)/livekit-server" $(LIVEKIT_BIN)
	$(LIVEKIT_BIN) --version

test: $(STAMP) tools typecheck
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not livekit and not engine"

typecheck: $(STAMP)
	$(PY) -m mypy

demo: $(STAMP) tools
	$(PY) -m adapters.entrypoints.cli demo

diagrams: $(STAMP)
	$(PY) -m stream_core.diagrams diagrams

bench: $(STAMP) tools
	$(PY) -m bench

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache
