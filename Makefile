# The two commands of the README's quick start. Each creates (or reuses) the
# virtualenv in $(VENV); it is rebuilt when setup.py changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	AKD_TF=$(BIN)/akd-tf bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest -q tests
