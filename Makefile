# The two quick-start commands (README): `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# bytecode for installed packages, found by import name (the core installs them with --no-compile)
COMPILE = $(BIN)/python -c "import compileall, importlib.util as u, os, sys; specs = [u.find_spec(m) for m in sys.argv[1:]]; \
	sys.exit(not all(compileall.compile_dir(os.path.dirname(s.origin), quiet=2, workers=2) if s.submodule_search_locations else compileall.compile_file(s.origin, quiet=2) for s in specs))"
NUMERIC_DEPS = pydantic pydantic_core typing_extensions annotated_types typing_inspection tabulate

# the core alone (pydantic, networkx, sympy, tabulate): enough for every table, in seconds
$(VENV)/.core: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile -e .  # no bytecode for the dependencies: sympy alone is thousands of files, and the numeric path never imports it
	$(BIN)/python -m compileall -q archcalc  # bytecode now, as a wheel install has (PYTHONDONTWRITEBYTECODE may be set)
	$(COMPILE) $(NUMERIC_DEPS)  # half a second once; without it, where PYTHONDONTWRITEBYTECODE is set, every table recompiles pydantic (0.60 s -> 0.37 s)
	touch $@

# everything the tests use: torch, torchvision and timm at the pins in constraints-test.txt, the peers, plots
$(VENV)/.full: $(VENV)/.core constraints-test.txt
	$(BIN)/pip install -q -e '.[dev,torch,vision,plot,peers,diagram,browser]' -c constraints-test.txt
	$(COMPILE) sympy mpmath networkx  # 12 s once; a symbolic command recompiled sympy each time otherwise (3.2 s -> 0.9 s for the README's first example)
	touch $@

.PHONY: setup setup-core demo test lint acceptance bench clean
setup-core: $(VENV)/.core
setup: $(VENV)/.full

demo: setup-core  ## set up the core, then print the lecture's AlexNet table
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
