# The two commands a newcomer needs (see README.md):
#   make serve   install into .venv and run the server on the embedded model (stdio)
#   make test    install everything the tests need, check, and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install serve check test test-python test-editors clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'

serve: install
	$(BIN)/flashcode serve

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy lsp_server inference prompts benchmarks

test-python: install
	$(BIN)/python -m pytest -q tests --ignore=tests/editors

test-editors: install
	PYTHON=$(BIN)/python PATH="$(abspath $(BIN)):$$PATH" bash .ci/editors.sh
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q tests/editors
	cd editors/vscode && PATH="$(abspath $(BIN)):$$PATH" npm test

test: check test-python test-editors

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
