# The README's commands.  Everything is installed into ./.venv on first use.
#
#   make serve   start the demo server (embedded FileStorage var/sessions.fs)
#   make test    run the whole test suite with pytest
#   make bench   run the benchmarks (bench/run_all.py)
#   make fuzz    a long fuzzing campaign on the cookie parsers (bench/fuzz_campaign.py)
#   make clean   remove the venv, build and test artefacts

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
EXTRAS ?= test,all

# Extra arguments: make serve ARGS='--port 8080', make test PYTEST_ARGS='-k cookie'
ARGS ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv serve test bench fuzz clean

help:
	@echo "make serve   start the demo server (ARGS='...' passes options)"
	@echo "make test    run the test suite (PYTEST_ARGS='...' passes options)"
	@echo "make bench   run the benchmarks"
	@echo "make fuzz    fuzz the cookie parsers for long (ARGS='--examples N --seconds S')"
	@echo "make clean   remove .venv and generated files"

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pyramid 2.x requires setuptools<82 (it still imports pkg_resources), so
# install a compatible setuptools before the package and its extras.
$(STAMP): setup.py | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install --upgrade 'setuptools<82' wheel
	$(BIN)/python -m pip install -e '.[$(EXTRAS)]'
	touch $(STAMP)

var:
	mkdir -p var

serve: venv | var
	$(BIN)/zodbsession serve $(ARGS)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	$(BIN)/python bench/run_all.py $(ARGS)

fuzz: venv
	$(BIN)/python bench/fuzz_campaign.py $(ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis bench/out
	find . -path ./.git -prune -o -name __pycache__ -type d -exec rm -rf {} +
	find . -path ./.git -prune -o -name '*.egg-info' -type d -exec rm -rf {} +
