# storagelab: `make up` runs the control plane, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

include lab.mk

.PHONY: up test test-unit test-api bench lint venv clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "storagelab: installing Python packages into $(VENV) (first run takes a minute)"
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test,node,nfs]'
	@touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	@scripts/start-docker.sh
	@$(VENV)/bin/storagelab up

test: $(STAMP)
	@scripts/prepare-test-env.sh
	@. ./.test-env && $(PY) -m pytest -q -p no:cacheprovider tests
	@$(VENV)/bin/lint-imports --no-cache

test-unit: $(STAMP)
	@$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	@scripts/prepare-test-env.sh
	@. ./.test-env && $(PY) bench/api.py

lint: $(STAMP)
	@$(VENV)/bin/ruff check apimachinery apiserver storage csi_like kubelet storagelab bench tests
	@$(PY) -m mypy apimachinery apiserver storage csi_like kubelet storagelab
	@$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) .storagelab .test-env
