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

# What the real-browser and PostgreSQL tests need from the system (Debian packages), and
# LiveKit's JavaScript client for the cross-origin browser test (npm, project-local).
SYSTEM_TOOLS := chromium:chromium chromedriver:chromium-driver pg_ctl:postgresql
LIVEKIT_JS_VERSION := 2.23.0
LIVEKIT_JS := .tools/js/node_modules/livekit-client/dist/livekit-client.umd.js

.PHONY: install tools system js test test-fast demo up diagrams bench typecheck clean

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

# Installs chromium, chromium-driver and postgresql when missing (one apt-get update);
# fails loudly when it cannot (not root, no sudo, no apt-get).
system:
	missing=""; \
	for pair in $(SYSTEM_TOOLS); do \
	  tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  if ! command -v $$tool >/dev/null && ! ls /usr/lib/postgresql/*/bin/$$tool >/dev/null 2>&1; then \
	    missing="$$missing $$pkg"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  command -v apt-get >/dev/null || { echo "ERROR: apt-get not found; install$$missing by hand" >&2; exit 1; }; \
	  $$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing \
	    || { echo "ERROR: could not install$$missing" >&2; exit 1; }; \
	fi

js: $(LIVEKIT_JS)

$(LIVEKIT_JS):
	command -v npm >/dev/null || { echo "ERROR: npm is required for livekit-client (the browser test)" >&2; exit 1; }
	mkdir -p .tools/js
	npm install --silent --no-audit --no-fund --prefix .tools/js livekit-client@$(LIVEKIT_JS_VERSION) \
	  || { echo "ERROR: npm install livekit-client@$(LIVEKIT_JS_VERSION) failed" >&2; exit 1; }
	test -f $(LIVEKIT_JS)

test: $(STAMP) tools system js typecheck
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not livekit and not engine"

typecheck: $(STAMP)
	$(PY) -m mypy

demo: $(STAMP) tools
	$(PY) -m adapters.entrypoints.cli demo

up: $(STAMP) tools
	$(PY) -m adapters.entrypoints.cli up

diagrams: $(STAMP)
	$(PY) -m stream_core.diagrams diagrams --markdown docs/diagrams.md

bench: $(STAMP) tools
	$(PY) -m bench

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache
