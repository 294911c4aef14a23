# deploybench developer entry points. `make demo` and `make test` each create .venv and
# install what they need on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned to 2.13.0 in pyproject (any other version pulls a multi-GB CUDA build).
EXTRAS := onnxruntime,torch,export,postgresql,openvino,tvm,workflows,litert,embedded,dev
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)
export DEPLOYBENCH_HOME ?= $(CURDIR)/.deploybench

.PHONY: install demo test lint format typecheck unit clean benchmark docs embedded-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	# pytorchcv (the zoo's resnet18 architecture) without its declared torchvision, which
	# would replace torch 2.13.0 by a multi-GB CUDA build; the models used import neither.
	$(BIN)/python -m pip install --quiet --no-deps pytorchcv==0.0.74
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# The embedded targets' cross-compilers and QEMU are Debian packages (about 3.6 GB): installed
# here when missing and running as root, otherwise the command to run is printed.
EMBEDDED_PACKAGES := gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm qemu-user \
	gcc-aarch64-linux-gnu
embedded-tools:
	@missing=""; for tool in gcc arm-none-eabi-gcc qemu-system-arm qemu-aarch64 aarch64-linux-gnu-gcc; do \
	  command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing the embedded tools (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      $(EMBEDDED_PACKAGES) >/dev/null; \
	  else \
	    echo "missing:$$missing; run: sudo apt-get install $(EMBEDDED_PACKAGES)"; exit 1; \
	  fi; \
	fi

demo: install
	$(BIN)/deploybench demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

unit: install
	$(BIN)/pytest -m "not slow" -q

# Two test processes, one module each at a time (module fixtures and the toolchain
# environments are built once per process): many tests wait on subprocesses, agents and
# sockets, so two cores run the suite in about 60 % of the serial time.
# --durations lists the slowest tests: the suite has a budget of about 15 minutes on 2 cores.
TEST_WORKERS ?= 2

test: lint typecheck embedded-tools
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

benchmark: install
	$(BIN)/python benchmarks/harness_overhead.py

docs: install
	$(BIN)/python -m deploybench.docs > docs/experiments.md
	$(BIN)/python -m deploybench.cli.reference > docs/cli.md
	$(BIN)/python -m deploybench.toolchains.guides docs/toolchains

clean:
	rm -rf $(VENV) .deploybench .pytest_cache .mypy_cache .ruff_cache
