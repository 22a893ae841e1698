# The two commands a newcomer needs (see README.md):
#   make serve   install into .venv and run the server on the embedded model (stdio)
#   make test    install everything the tests need, check, and run every test
#   make test-remote   the remote backend against a real llama.cpp server (builds
#                      llama-cpp-python[server] from its PyPI source once: ~17 min on 2 cores)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama-cpp-python[server] lives in a virtual environment of its own: it is a test peer, not
# a dependency of flashcode. Its sdist also carries llama.cpp's GGUF tools.
LLAMA_VENV ?= .venv-llama
LLAMA_CPP_PYTHON ?= llama-cpp-python==0.3.36
LLAMA_SDIST ?= $(LLAMA_VENV)/sdist
# ggml's AMX int8 kernels crash in ggml_backend_amx_mul_mat on the first step on AMX CPUs
# (Sapphire Rapids class; llama.cpp issue 20824, unfixed upstream): build without them.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8
endif

.PHONY: install serve check test test-python test-editors test-remote llama-venv clean

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

llama-venv:
	$(LLAMA_VENV)/bin/python -c "import llama_cpp.server.app" 2>/dev/null || { \
	  $(PYTHON) -m venv $(LLAMA_VENV) && \
	  $(LLAMA_VENV)/bin/python -m pip install -q --upgrade pip && \
	  $(LLAMA_VENV)/bin/python -m pip download -q --no-deps --no-binary=:all: \
	    -d $(LLAMA_SDIST) '$(LLAMA_CPP_PYTHON)' && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(LLAMA_VENV)/bin/python -m pip install "$$(ls $(LLAMA_SDIST)/llama_cpp_python-*.tar.gz)[server]"; }

test-remote: install llama-venv
	FLASHCODE_LLAMA_PYTHON=$(abspath $(LLAMA_VENV))/bin/python \
	FLASHCODE_LLAMA_SDIST=$(abspath $(LLAMA_SDIST)) \
	  $(BIN)/python -m pytest -q tests/lsp/test_remote_llama.py tests/lsp/test_remote_backend.py

clean:
	rm -rf $(VENV) $(LLAMA_VENV) .mypy_cache .ruff_cache .pytest_cache
