# Two entry points (see README): `make run` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench lock clean-venv

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

## make run: install, then run the whole DVC pipeline on the embedded synthetic data set
run: $(STAMP)
	@[ -d .git ] || git init --quiet
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/dvc checkout --relink  # outputs become links into the DVC cache: one copy on disk, not two

## make test: install, then run every test, the end-to-end ones included (CI runs this)
test: $(STAMP)
	$(BIN)/python -m pytest

## make test-fast: the tests without the slow end-to-end ones
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

## make bench: speed tables for the model and preprocessing
bench: $(STAMP)
	$(BIN)/mol bench model
	$(BIN)/mol bench preprocess

clean-venv:
	rm -rf $(VENV)

## make lock: re-resolve requirements.lock from pyproject.toml (run after changing dependencies)
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/python -m pip install --quiet "botocore==$$(grep '^botocore==' requirements.lock | cut -d= -f3)" -e ".[dev,gpu]"
	{ sed -n '1,2p' requirements.lock; \
	  .lockenv/bin/python -c 'import sys; print("# python %d.%d: the Python this lock was resolved for (the Dockerfile checks its base image against it)" % sys.version_info[:2])'; \
	  .lockenv/bin/python -m pip freeze --exclude-editable | sed 's/+cpu//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lockenv
