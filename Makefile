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

# make serve installs what the demo needs, make test (bench, fuzz) all
# the rest; one stamp for each set of extras.
SERVE_EXTRAS ?= serve
TEST_EXTRAS  ?= test,all
SERVE_STAMP   = $(VENV)/.installed-serve
TEST_STAMP    = $(VENV)/.installed-test

# make serve and make test started together on a fresh clone build one
# venv: whoever comes second waits for this lock (flock, from util-linux),
# then finds the venv made and installs only what it lacks.
LOCK = $(VENV).lock

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

venv: $(TEST_STAMP)

# $(call install,EXTRAS,STAMP[,SUPERSET_STAMP]), run under the lock. The
# stamps are looked at again there: the other command may have done the
# work while we waited (test,all includes everything serve needs).
# pyramid 2.x requires setuptools<82 (it still imports pkg_resources), so
# a compatible setuptools goes in before the package and its extras.
define install
	flock $(LOCK) $(SHELL) -ec '\
	for done in $(2) $(3); do \
	    if [ -f $$done ] && [ $$done -nt setup.py ]; then touch $(2); exit 0; fi; \
	done; \
	if [ ! -f $(VENV)/.base ]; then \
	    $(PYTHON) -m venv $(VENV); \
	    $(BIN)/python -m pip install --upgrade pip; \
	    $(BIN)/python -m pip install --upgrade "setuptools<82" wheel; \
	    touch $(VENV)/.base; \
	fi; \
	$(BIN)/python -m pip install -e ".[$(1)]"; \
	touch $(2)'
endef

$(SERVE_STAMP): setup.py
	$(call install,$(SERVE_EXTRAS),$@,$(TEST_STAMP))

$(TEST_STAMP): setup.py
	$(call install,$(TEST_EXTRAS),$@)

var:
	mkdir -p var

serve: $(SERVE_STAMP) | var
	$(BIN)/zodbsession serve $(ARGS)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(TEST_STAMP)
	$(BIN)/python bench/run_all.py $(ARGS)

fuzz: $(TEST_STAMP)
	$(BIN)/python bench/fuzz_campaign.py $(ARGS)

clean:
	rm -rf $(VENV) $(LOCK) build dist .pytest_cache .hypothesis bench/out
	find . -path ./.git -prune -o -name __pycache__ -type d -exec rm -rf {} +
	find . -path ./.git -prune -o -name '*.egg-info' -type d -exec rm -rf {} +
