# Points of Invincibility backend. Needs only Python 3.11 and make.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
LOCK := requirements.txt
PACKAGES := shared services/registry services/status services/search services/notify tools/poi-cli
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.DEFAULT_GOAL := help
.PHONY: help install lock run test test-unit lint fmt bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# requirements.txt pins every third-party package with its hashes (and names no index); the workspace's own
# packages install editable on top, constrained to those pins.
$(VENV)/.synced: $(UV) $(LOCK) pyproject.toml shared/pyproject.toml services/*/pyproject.toml tools/poi-cli/pyproject.toml
	$(UV) venv --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --python $(VENV)/bin/python -r $(LOCK)
	$(UV) pip install --python $(VENV)/bin/python -c $(LOCK) $(addprefix -e ,$(PACKAGES))
	@touch $@

install: $(VENV)/.synced ## create .venv and install every package (uv workspace)

lock: $(UV) ## re-resolve dependencies and rewrite requirements.txt
	$(UV) lock --python $(PYTHON)
	$(UV) export --frozen --all-packages --all-groups --no-emit-workspace --format requirements-txt \
		--no-header -o $(LOCK)

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
