# callbridge — every target creates .venv at the repository root and installs the pinned
# dependencies first, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test lint typecheck validate build openapi bench ci clean

$(STAMP): requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

## run: start the local sandbox (moto as AWS, the real handlers, a carrier simulator)
run: $(STAMP)
	$(PY) -m sandbox $(ARGS)

## test: the whole test suite (unit, integration, e2e; installs Debian's chromium for the docs page test)
test: $(STAMP)
	sh tests/e2e/install-chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

validate: $(STAMP)
	$(VENV)/bin/sam validate --lint --region $(AWS_DEFAULT_REGION)

## build: sam build for the Lambda runtime (python3.13, arm64)
build: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam build

## openapi: regenerate docs/openapi.json from the code
openapi: $(STAMP)
	$(PY) -c "import json; from functions.api.app import openapi_document; print(json.dumps(openapi_document(), indent=2, sort_keys=True))" > docs/openapi.json

bench: $(STAMP)
	$(PY) -m bench

ci: test lint typecheck validate

clean:
	rm -rf $(VENV) .aws-sam .mypy_cache .ruff_cache
