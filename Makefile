# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv and installs on first use,
# from requirements/lock.txt (every package at one exact version, so a fresh machine resolves what CI resolved).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements/lock.txt
UV_VERSION := 0.13.9

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install lock corpus-extras clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==26.3"
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	@# PESQ is built from source; without a C compiler the evaluation reports it as n/a
	$(PY) -m pip install --quiet "pesq==0.0.4" || echo "note: pesq did not install (needs a C compiler); PESQ will be n/a"
	@# Speaker similarity (Resemblyzer, weights in its wheel) beside the lock, --no-deps: its webrtcvad is built from
	@# source, and its `typing` requirement is an old backport (shadowed by the standard library, installed for pip check)
	$(PY) -m pip install --quiet --no-deps "resemblyzer==0.1.4" "webrtcvad==2.0.10" "typing==3.7.4.3" \
		|| echo "note: resemblyzer did not install (webrtcvad needs a C compiler); speaker similarity will be n/a"
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q tests

# Regenerate the lock after changing dependencies in pyproject.toml (needs PyPI).
lock:
	$(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 -o $(LOCK)

# Optional system packages for the corpus (Debian/Ubuntu): natural voices (flite; festival's HTS slt for the test
# split) and General MIDI music
# (fluidsynth with the FluidR3_GM soundfont). The corpus and the demo build without them.
corpus-extras:
	@command -v apt-get >/dev/null || { echo "corpus-extras: apt-get not found; install flite, fluidsynth and a General MIDI soundfont with your package manager"; exit 1; }
	$(SUDO) apt-get install -y flite festival festvox-us-slt-hts fluidsynth fluid-soundfont-gm

clean:
	rm -rf $(VENV) runs wavtokenizer
