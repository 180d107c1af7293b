# The two commands of the README. Each installs what it needs first
# (once: the stamps below skip work already done).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test bench-smoke

run: $(VENV)/.installed
	$(PY) app.py

# Two workers, each test module whole on one of them (so that a module's
# app and fixtures are made once), the slowest modules first
# (tests/conftest.py: SLOW_FIRST): on 2 cores the suite keeps both busy.
TEST_WORKERS ?= 2

test: $(VENV)/.installed-dev
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

$(VENV)/.installed: requirements.txt scripts/install.sh
	VENV=$(VENV) scripts/install.sh
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt requirements-bench.txt scripts/install.sh
	VENV=$(VENV) scripts/install.sh --dev
	touch $@ $(VENV)/.installed
