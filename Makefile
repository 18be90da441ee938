# The commands of the README: quick start, relative-gain experiment, tests. Each creates (or reuses) the
# virtualenv in $(VENV); it is rebuilt when setup.py changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo relative-gain test

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	AKD_TF=$(BIN)/akd-tf bash scripts/demo.sh

relative-gain: $(STAMP)
	AKD_TF=$(BIN)/akd-tf bash scripts/relative_gain_demo.sh

# Test processes (pytest-xdist): many tests wait on subprocesses, phones and the farm, so two share two cores well.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) tests
