"""Intelligibility: word error rate of an offline recogniser (pocketsphinx with its bundled en-us model)."""

from __future__ import annotations

import numpy as np
import torch

from ..audio_io import resample
from ..corpus.text import normalize_words

ASR_RATE = 16000


def available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def transcribe(waveform: torch.Tensor, rate: int) -> str:
    """Recognise English speech; returns lower-case words.

    A fresh decoder per utterance: pocketsphinx adapts its cepstral mean across utterances, which would make a
    transcript depend on what was decoded before it."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")
    audio = resample(waveform[None].float(), rate, ASR_RATE)[0].clamp(-1, 1)
    pcm = (audio.numpy() * 32767).astype(np.int16)
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, number of reference words), after normalising both texts."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)], len(ref)
