# callbridge — every target creates .venv at the repository root and installs the pinned dependencies it
# needs first, so a fresh clone needs only Python 3.11+ and make. `make run` installs only what the sandbox
# needs (requirements-run.txt); `make test` and the other tool targets add the rest (requirements-dev.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SANDBOX_DIR ?= .sandbox
RUN_STAMP := $(VENV)/.run-$(shell cat requirements-run.txt | cksum | cut -d' ' -f1)
DEV_STAMP := $(VENV)/.dev-$(shell cat requirements-run.txt requirements-dev.txt | cksum | cut -d' ' -f1)
# Where the interpreter's pip can install into another environment (pip >= 22.3: `--python`), the venv is created
# without a pip of its own, in a blink instead of seconds; `make test` adds one for the tools.
# The installs go through uv (from PyPI, into .venv): it looks the pinned packages up and downloads them in
# parallel, where pip takes them one after the other. Where uv cannot be installed or cannot reach the index,
# pip does the same install.
UV := uv==0.13.8
UV_INTO := $(VENV)/bin/uv pip install --python $(PY)
# pip into .venv: its own pip once `make test` has added one, else the interpreter's (--python)
PIP_INTO := if [ -x $(VENV)/bin/pip ]; then $(PY) -m pip install $$PIP_ARGS; else $(PYTHON) -m pip --python $(PY) install $$PIP_ARGS; fi
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export AWS_DEFAULT_REGION ?= us-east-1

CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat requirements-checkov.txt | cksum | cut -d' ' -f1)

# The Lambda runtime's Python (python3.13; pyenv's where present) for `make test-lambda-python`, in a virtualenv
# of its own inside .venv.
LAMBDA_PYTHON ?= python3.13
LAMBDA_VENV := $(VENV)/lambda-python
LAMBDA_STAMP := $(LAMBDA_VENV)/.installed-$(shell cat requirements-run.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: run admin screenshots test test-lambda-python lint typecheck validate checkov build openapi bench bench-campaigns ci clean

$(PY):
	@echo "==> creating $(VENV) with $(PYTHON)"
	if $(PYTHON) -c 'import sys, pip; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (22, 3))' 2>/dev/null; then \
	  $(PYTHON) -m venv --without-pip $(VENV); else $(PYTHON) -m venv $(VENV); fi
	@# the callbridge package is imported from layers/callbridge, where the Lambda layer is built from
	$(PY) -c "import sysconfig, pathlib; pathlib.Path(sysconfig.get_path('purelib'), 'callbridge.pth').write_text('$(CURDIR)/layers/callbridge\n')"

# uv installs no bytecode: Python compiles what the sandbox imports on first use, not all of botocore and moto now.
$(RUN_STAMP): requirements-run.txt | $(PY)
	@test -x $(VENV)/bin/uv || { echo "==> installing the installer, $(UV) (or else pip installs)"; \
	  PIP_ARGS="--quiet --no-compile --only-binary=:all: $(UV)"; $(PIP_INTO) || echo "==> no uv here: pip installs, one package after the other"; }
	@echo "==> installing what the sandbox needs: $$(grep -c '==' requirements-run.txt) pinned packages (requirements-run.txt)"
	PIP_ARGS="--no-compile -r requirements-run.txt"; \
	if [ -x $(VENV)/bin/uv ]; then $(UV_INTO) -r requirements-run.txt || { echo "==> uv failed: pip instead"; $(PIP_INTO); }; \
	else $(PIP_INTO); fi
	rm -f $(VENV)/.run-* && touch $@

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	@echo "==> installing the tools: pytest, ruff, mypy, SAM CLI, ... (requirements-dev.txt)"
	@# the tools' own pip (sam build runs it)
	$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --default-pip >/dev/null
	PIP_ARGS="-r requirements-dev.txt"; \
	if [ -x $(VENV)/bin/uv ]; then $(UV_INTO) --compile-bytecode -r requirements-dev.txt || { echo "==> uv failed: pip instead"; $(PIP_INTO); }; \
	else $(PIP_INTO); fi
	rm -f $(VENV)/.dev-* && touch $@

## run: start the local sandbox (moto as AWS, the real handlers, a carrier simulator)
run: $(RUN_STAMP)
	@echo "==> starting the sandbox"
	$(PY) -m sandbox $(ARGS)

## admin: manage the running sandbox's accounts, e.g. make admin ARGS="list" (see README, Accounts)
admin:
	@test -x $(PY) || { echo "no $(VENV): start the sandbox with make run first" >&2; exit 2; }
	@PYTHONPATH=$(CURDIR)/layers/callbridge $(PY) -m callbridge.admin --sandbox --sandbox-dir $(SANDBOX_DIR) $(ARGS)

## test: the whole test suite (unit, integration, e2e; two workers, the sandbox tests in two runs of their own; installs Debian's chromium for the browser tests)
test: $(DEV_STAMP)
	sh tests/e2e/install-chromium.sh
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

$(LAMBDA_STAMP): requirements-run.txt requirements-dev.txt $(RUN_STAMP)
	@echo "==> a virtualenv with $$($(LAMBDA_PYTHON) --version), the Lambda runtime's Python: $(LAMBDA_VENV)"
	rm -rf $(LAMBDA_VENV) && $(LAMBDA_PYTHON) -m venv --without-pip $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -c "import sysconfig, pathlib; pathlib.Path(sysconfig.get_path('purelib'), 'callbridge.pth').write_text('$(CURDIR)/layers/callbridge\n')"
	if [ -x $(VENV)/bin/uv ]; then $(VENV)/bin/uv pip install --python $(LAMBDA_VENV)/bin/python -r requirements-dev.txt; \
	else $(PYTHON) -m pip --python $(LAMBDA_VENV)/bin/python install -r requirements-dev.txt; fi
	touch $@

## test-lambda-python: the unit and integration tests again on the Lambda runtime's Python (3.13; CI runs it too)
test-lambda-python: $(LAMBDA_STAMP)
	$(LAMBDA_VENV)/bin/python -m pytest -n 2 tests/unit tests/integration $(PYTEST_ARGS)

## screenshots: the console's browser tests, writing their screenshots to docs/ (shown in the README)
screenshots: $(DEV_STAMP)
	sh tests/e2e/install-chromium.sh
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest tests/e2e/test_console.py

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m vulture

typecheck: $(DEV_STAMP)
	$(PY) -m mypy

validate: $(DEV_STAMP)
	$(VENV)/bin/sam validate --lint --region $(AWS_DEFAULT_REGION)

# checkov pins an older boto3 than the project does, so it gets a virtualenv of its own (inside .venv).
$(CHECKOV_STAMP): requirements-checkov.txt $(DEV_STAMP)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	rm -f $(CHECKOV_VENV)/.installed-* && touch $@

## checkov: the template's security checks; each skipped check is justified in template.yaml (Metadata: checkov)
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --quiet --compact

## build: sam build for the Lambda runtime (python3.13, arm64)
build: $(DEV_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam build

## openapi: regenerate docs/openapi.json from the code
openapi: $(DEV_STAMP)
	$(PY) -c "import json; from functions.api.app import openapi_document; print(json.dumps(openapi_document(), indent=2, sort_keys=True))" > docs/openapi.json

bench: $(DEV_STAMP)
	$(PY) -m bench

## bench-campaigns: accept 10,000 calls, fan-out rate, 1,000 calls end to end, cost per campaign call
bench-campaigns: $(DEV_STAMP)
	$(PY) -m bench.campaigns --out bench/results/campaigns.json

ci: test lint typecheck validate checkov

clean:
	rm -rf $(VENV) .aws-sam .mypy_cache .ruff_cache
