# Two commands set everything up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help install run serve portal test lint bench clean

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

help:
	@echo "make run    install, migrate, seed the demo region if the database is empty,"
	@echo "            then start the hub (huren serve) and the portal; Ctrl-C stops both"
	@echo "make test   install and run the whole test suite (ruff, mypy, pytest)"
	@echo "make bench  run the benchmarks under bench/ with small defaults"
	@echo "make lint   ruff and mypy only"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	$(BIN)/huren db upgrade
	$(BIN)/huren demo seed --if-empty
	@exec scripts/run.sh

serve: install
	$(BIN)/huren serve

portal: install
	scripts/portal.sh

lint: install
	$(BIN)/ruff check --no-cache .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	@set -e; for benchmark in bench/[!_]*.py; do \
		echo "== $$benchmark"; $(BIN)/python "$$benchmark" --small; done

clean:
	rm -rf .web test-artifacts .mypy_cache .ruff_cache
