# lsstuk_kit: `make demo` and `make test` set everything up in .venv from scratch.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DOCS_STAMP := $(VENV)/.docs-stamp

.PHONY: setup demo test lint lab bench docs docs-clean clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "lsstuk_kit needs Python 3.10+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/lsstuk-kit replay data/sample
	$(BIN)/lsstuk-kit summary data/sample
	$(BIN)/python -m lsstuk_kit.demo

test: setup
	$(BIN)/python -m pytest --nbmake tests lsstuk_kit notebooks

lint: setup
	$(BIN)/ruff check lsstuk_kit tests benchmarks docs/conf.py
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_docstrings.py

lab: setup
	$(BIN)/jupyter lab notebooks

bench: setup
	$(BIN)/python benchmarks/bench_read.py
	$(BIN)/python benchmarks/bench_simulate.py

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	@touch $(DOCS_STAMP)

# The site, into docs/_build/html: executes the notebooks and the guide/gallery pages (jupyter-cache
# in docs/_build/.jupyter_cache re-runs only what changed); -W: any warning fails the build.
docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

docs-clean:
	rm -rf docs/_build docs/api/generated

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
