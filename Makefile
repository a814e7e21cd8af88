# Points of Invincibility backend. Needs only Python 3.11 and make.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit lint fmt bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock shared/pyproject.toml services/*/pyproject.toml tools/poi-cli/pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced ## create .venv and install every package (uv workspace)

run: install ## start PostgreSQL, NATS, Redis (embedded unless POI_*_URL set) and the four services
	$(VENV)/bin/poi run

test: install ## run the whole suite (unit, integration, e2e, smoke)
	$(VENV)/bin/pytest -q

test-unit: install ## run only the unit tests (no servers)
	$(VENV)/bin/pytest -q tests/unit

lint: install ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services tools bench

fmt: install ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install ## run the benchmarks under bench/ (each prints its ratio to a baseline)
	$(VENV)/bin/python -m bench

clean: ## remove the environments (keeps .data, the dev stack's data)
	rm -rf $(VENV) $(TOOLS)
