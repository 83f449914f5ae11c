# lsstuk_kit: `make demo` and `make test` set everything up in .venv from scratch.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test lint lab bench clean

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
	$(BIN)/ruff check lsstuk_kit tests benchmarks

lab: setup
	$(BIN)/jupyter lab notebooks

bench: setup
	$(BIN)/python benchmarks/bench_read.py
	$(BIN)/python benchmarks/bench_simulate.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
