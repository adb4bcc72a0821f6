"""Natural-sounding voices from Debian's `flite` (CMU Flite 2.2): statistical (clustergen) voices built from real
recordings of the CMU ARCTIC speakers `awb`, `rms` and `slt`, with the synthesiser's own segment end times.

Optional: `available()` is False on a machine without the `flite` program (`make corpus-extras` installs it where
apt works). Its diphone voice `kal` is held out for evaluation and never used here. Word times come from the segment
times: each word's phones are found by speaking the words one by one (one more call per sentence) and the counts
must add up to the sentence's segments, else the sentence is refused rather than mis-timed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import WavTokenizerError

VOICES = ("awb", "rms", "slt")  # clustergen voices from CMU ARCTIC recordings; `kal` (diphone) is held out
PAUSE = "pau"
LICENCE = ("CMU Flite 2.2 (BSD-style CMU licence) with its CMU ARCTIC clustergen voice; output free to use and "
           "redistribute")
_SEGMENT = re.compile(r"(\S+):([0-9.]+)")


@dataclass
class FliteSpeech:
    audio: np.ndarray  # int16
    sampling_rate: int
    words: list[dict]
    phones: list[dict]


def available() -> bool:
    return shutil.which("flite") is not None


def version() -> str:
    result = subprocess.run(["flite", "--version"], capture_output=True, text=True)  # exits 1 after printing
    found = re.search(r"version: (\S+)", result.stdout)
    return found.group(1) if found else "flite"


def installed_training_voices() -> list[str]:
    """The usable voices this flite offers (a subset of VOICES)."""
    if not available():
        return []
    result = subprocess.run(["flite", "-lv"], capture_output=True, text=True)
    if result.returncode != 0:
        return []
    listing = result.stdout
    offered = set(listing.split(":", 1)[-1].split())
    return [voice for voice in VOICES if voice in offered]


def _run(text: str, voice: str, wav: Path | str, stretch: float) -> list[tuple[str, float]]:
    command = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-psdur", "-t", text, "-o",
               str(wav)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise WavTokenizerError(f"flite failed for voice {voice}: {result.stderr.strip()[-300:]}")
    return [(name, float(end)) for name, end in _SEGMENT.findall(result.stdout)]


def _word_phone_counts(words: list[str], voice: str) -> list[int]:
    """Phones of each word spoken alone: one flite call with the words as separate sentences."""
    segments = _run(". ".join(words) + ".", voice, "none", 1.0)
    counts, current = [], 0
    for name, _ in segments:
        if name == PAUSE:
            if current:
                counts.append(current)
            current = 0
        else:
            current += 1
    if current:
        counts.append(current)
    return counts


def synthesize(text: str, voice: str, stretch: float = 1.0) -> FliteSpeech:
    """Speak `text` (letters and punctuation) with a flite voice; phones end where the next begins, pauses are
    'sil', word intervals span their phones."""
    from .text import normalize_words

    if voice not in VOICES:
        raise WavTokenizerError(f"flite voice {voice!r} is not a training voice (use one of {VOICES})")
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        segments = _run(text, voice, wav, stretch)
        # the standard library's reader, not soundfile: this runs in forked pool workers, and a fork taken while
        # the parent holds libsndfile's lock (it writes FLAC meanwhile) would wait on that lock forever
        with wave.open(wav, "rb") as handle:
            if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
                raise WavTokenizerError(f"flite wrote {handle.getnchannels()} channel(s) of "
                                        f"{8 * handle.getsampwidth()}-bit audio; expected 16-bit mono")
            rate = handle.getframerate()
            audio = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").copy()
    duration = len(audio) / rate
    phones, start = [], 0.0
    for name, end in segments:
        end = min(end, duration)
        if end <= start:
            continue
        label = "sil" if name == PAUSE else name
        if phones and label == "sil" and phones[-1]["phone"] == "sil":
            phones[-1]["end"] = round(end, 4)
        else:
            phones.append({"phone": label, "start": round(start, 4), "end": round(end, 4)})
        start = end
    if phones and phones[-1]["end"] < duration:  # the waveform's tail after the last segment is silence
        if phones[-1]["phone"] == "sil":
            phones[-1]["end"] = round(duration, 4)
        else:
            phones.append({"phone": "sil", "start": phones[-1]["end"], "end": round(duration, 4)})
    words = normalize_words(text)
    counts = _word_phone_counts(words, voice)
    spoken = [p for p in phones if p["phone"] != "sil"]
    if len(counts) != len(words) or sum(counts) != len(spoken):
        raise WavTokenizerError(f"flite's phones of {text!r} do not split into its words ({counts} for "
                                f"{len(spoken)} phones); sentence skipped")
    timed, first = [], 0
    for word, count in zip(words, counts):
        timed.append({"word": word, "start": spoken[first]["start"], "end": spoken[first + count - 1]["end"]})
        first += count
    return FliteSpeech(audio=audio, sampling_rate=rate, words=timed, phones=phones)


def installed_voices() -> list:
    from .voices import Voice

    sexes = {"awb": "male", "rms": "male", "slt": "female"}  # CMU ARCTIC's speakers
    return [Voice(backend="flite", name=name, speaker=name, sex=sexes[name], language="en", licence=LICENCE)
            for name in installed_training_voices()]


def speak(text: str, voice, speed: float = 1.0, pitch: float = 0.0, seed: int = 0):
    from .voices import Speech

    spoken = synthesize(text, voice.name, 1.0 / speed)
    return Speech(spoken.audio, spoken.sampling_rate, spoken.words, spoken.phones)
