# srmac: `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.srmac-setup
APT_PACKAGES := iverilog libusb-1.0-0 libftdi1-2 dataset-fashion-mnist
TORCH_VERSION := 2.13.0
JOBS  ?= 2

.PHONY: setup test demo lint regress bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@test -x $(PY) || python3.11 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@# The CPU wheel of torch first: an unpinned torch would pull a CUDA build.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==$(TORCH_VERSION)
	@$(PY) -m pip install -q -e '.[all]'
	@touch $(STAMP)
	@echo "setup: done ($(VENV))"

test: setup
	$(PY) -m pytest -q -n $(JOBS) -m "not slow"

regress: setup
	$(PY) -m pytest -q -n $(JOBS) -m slow

demo: setup
	$(VENV)/bin/srmac demo --out build/demo

bench: setup
	$(PY) benchmarks/matmul_speed.py
	$(PY) benchmarks/emulation.py

# The site: docs/, the notebooks (not re-executed) and the CLI reference
# generated from the code, built with --strict (a warning fails the build).
docs: setup
	rm -rf build/docs_src && mkdir -p build/docs_src/reference
	cp -r docs/. build/docs_src/
	cp -r notebooks build/docs_src/notebooks
	$(PY) -m ref.cli_docs > build/docs_src/reference/cli.md
	$(VENV)/bin/mkdocs build --strict --quiet
	@echo "docs: build/site/index.html"

lint: setup
	$(VENV)/bin/ruff check ref hwgen sim boards tests benchmarks

clean:
	rm -rf build .pytest_cache
