# The README's two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	# torch/torchvision are pinned exactly in pyproject.toml: pip takes them from this machine's disk.
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Set up, apply migrations, load the DEMO region and serve http://127.0.0.1:8000 (SQLite under ./var/).
run: $(STAMP)
	$(BIN)/strawfire db upgrade
	$(BIN)/strawfire demo load
	$(BIN)/strawfire serve --demo

## Set up and run the whole test suite (PostgreSQL tests need STRAWFIRE_TEST_POSTGRES_URL; .ci/run sets it).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy detector satellite video service bench
	$(BIN)/pytest --durations=40

bench: $(STAMP)
	$(BIN)/python bench/bench_assign.py
	$(BIN)/python bench/bench_firms_parse.py
	$(BIN)/python bench/bench_ground.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
