# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv and installs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@# PESQ is built from source; without a C compiler the evaluation reports it as n/a
	$(PY) -m pip install --quiet "pesq>=0.0.4" || echo "note: pesq did not install (needs a C compiler); PESQ will be n/a"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) runs wavtokenizer
