"""Intelligibility: word error rate of an offline recogniser (pocketsphinx with its bundled en-us model)."""

from __future__ import annotations

import numpy as np
import torch

from ..audio_io import resample
from ..corpus.text import normalize_words

ASR_RATE = 16000
_DECODER = None


def available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def transcribe(waveform: torch.Tensor, rate: int) -> str:
    """Recognise English speech; returns lower-case words."""
    global _DECODER
    from pocketsphinx import Decoder

    if _DECODER is None:
        _DECODER = Decoder(samprate=ASR_RATE, loglevel="FATAL")
    audio = resample(waveform[None].float(), rate, ASR_RATE)[0].clamp(-1, 1)
    pcm = (audio.numpy() * 32767).astype(np.int16)
    _DECODER.start_utt()
    _DECODER.process_raw(pcm.tobytes(), full_utt=True)
    _DECODER.end_utt()
    hypothesis = _DECODER.hyp()
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
