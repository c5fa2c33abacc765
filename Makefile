# The two quick-start commands (README): `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/archcalc: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,torch,plot,peers]'
	$(BIN)/python -m compileall -q archcalc  # bytecode now, as a wheel install has (PYTHONDONTWRITEBYTECODE may be set)
	touch $@

.PHONY: setup demo test lint acceptance bench clean
setup: $(BIN)/archcalc

demo: setup  ## set up, then print the lecture's AlexNet table
	$(BIN)/archcalc table specs/alexnet.json

test: setup  ## set up, then run the whole test suite and the lecture acceptance figures
	$(BIN)/python -m pytest -q
	@if [ -f ../shared/acceptance/seed_figures.py ]; then PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python ../shared/acceptance/seed_figures.py; fi

lint: setup
	$(BIN)/ruff check archcalc tests benchmarks audit
	$(BIN)/mypy archcalc

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
