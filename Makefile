# chainweave developer commands. Needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck pytest bench bench-chains clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "chainweave needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the main job, on the offline mock provider unless an API key is set
run: install
	$(BIN)/python examples/quickstart.py

## test: lint, strict type check, and the whole test suite
test: lint typecheck pytest

lint: install
	$(BIN)/ruff check chainweave tests benchmarks examples

typecheck: install
	$(BIN)/mypy chainweave

pytest: install
	$(BIN)/pytest -q

## bench: performance figures as JSON (not part of the test run)
bench: install bench-chains
	$(BIN)/python benchmarks/bench_openai_adapter.py
	$(BIN)/python benchmarks/bench_manager_overhead.py
	$(BIN)/python benchmarks/bench_pipeline_overhead.py
	$(BIN)/python benchmarks/bench_injection_detection.py
	$(BIN)/python benchmarks/bench_pii_detection.py
	$(BIN)/python benchmarks/checkpoints.py

## bench-chains: chainweave vs LangChain LCEL vs plain Python; LCEL lives in its own venv
BENCH_VENV := benchmarks/.venv
bench-chains:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . 'langchain-core>=0.3'
	$(BENCH_VENV)/bin/python benchmarks/chains.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
