# The commands of the README. Each sets the project up from a fresh clone:
# a .venv is created when missing and the package is installed with its dev extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the package metadata changes (editable install: code edits need nothing).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/prunelora demo

# Every test, the slow ones included (what CI runs). `-m ""` lifts pyproject's `-m 'not slow'`.
# --durations=15 lists the slowest tests, so that one growing past the suite's budget shows.
# -n auto: one pytest worker per core (pytest-xdist), whole files per worker (--dist loadfile) so a
# file's fixtures are built once; the suite is single-threaded per test (conftest sets 1 thread).
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "" -n auto --dist loadfile --durations=15

# The same without the tests marked slow (the default of a plain `pytest`).
test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples docgen

# The documentation site, into site/ (open site/index.html). --strict: a warning (a broken link, a
# missing page, a reference to a renamed function) fails the build. Offline: nothing is fetched.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo-out site .pytest_cache .hypothesis
