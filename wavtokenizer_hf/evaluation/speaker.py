"""Speaker similarity, the kind of number the WavTokenizer paper reports: the cosine of the speaker embeddings of the
original and of the reconstruction. Values depend on the speaker model: they compare with other numbers made with
this encoder, not with numbers made with another (e.g. a WavLM-based verifier).

The encoder is Resemblyzer 0.1.4's GE2E voice encoder (Apache-2.0), whose weights `pretrained.pt` ship inside its
wheel; their SHA-256 is recorded below and weights that differ are refused. It runs on the CPU, loaded once per
process; the numbers are deterministic. Resemblyzer installs beside the lock (see the Makefile): without it the
similarity is None. Its embeddings are non-negative and unit-length, so the cosine lies in [0, 1] and unrelated
voices still score around 0.4-0.5. Reference points (tests/test_speaker_similarity.py): a male ARCTIC recording
against itself 1.0, with white noise at 20 dB SNR 0.92 (10 dB: 0.74), low-passed at 3 kHz 0.95; against another
ARCTIC speaker 0.41, espeak-ng voices 0.45-0.53.

Both signals get the same preprocessing, Resemblyzer's own (what its encoder was trained on) with one change: each is
resampled to 16 kHz, scaled to -30 dBFS and has its long silences cut by Resemblyzer's webrtcvad trimming, so the
embeddings describe the voice during speech, not the pauses. Resemblyzer only raises quiet audio to -30 dBFS; here
loud audio is lowered too, because the encoder reads a linear (not log) mel spectrogram: a reconstruction quieter
than a loud original would otherwise lose similarity for its level alone (measured: 0.93 instead of 1.0 for the same
recording at a tenth of its amplitude). The number compares voices, not levels.

A signal with no speech (digital silence, or audio in which the VAD finds none) has no speaker. A reference without
speech gives None with the reason; an estimate without speech where the reference has some scores 0, the bottom of
the scale, with the reason: it kept nothing of the voice, and leaving it out of an average would reward a codec for
outputs that lose the voice entirely (the embedding of silence itself scores about 0.48 against speech, as another
voice would, which is why it is not computed).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch

from ..audio_io import resample
from ..errors import WavTokenizerError
from ..extras import available as has
from ..extras import require

RATE = 16000  # the encoder's sampling rate
TARGET_DBFS = -30.0  # Resemblyzer's normalisation level
SILENT_RMS = 1e-6  # -120 dBFS: digital silence, which cannot be scaled to the target level
WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"  # resemblyzer 0.1.4 pretrained.pt


def available() -> bool:
    return has("resemblyzer")


def verify_weights(weights: Path) -> None:
    """Raise unless `weights` has the recorded SHA-256."""
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise WavTokenizerError(f"speaker encoder weights differ from the recorded ones: {weights} has SHA-256 "
                                f"{digest}, expected {WEIGHTS_SHA256} (resemblyzer 0.1.4)")


@functools.cache
def _resemblyzer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices of webrtcvad (pkg_resources) and scipy.ndimage.morphology
        return require("resemblyzer", "speaker similarity")


@functools.cache
def _encoder():
    """Resemblyzer's voice encoder on the CPU, its weights checked (once per process)."""
    resemblyzer = _resemblyzer()
    weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
    verify_weights(weights)
    return resemblyzer.VoiceEncoder(device="cpu", verbose=False, weights_fpath=weights).eval()


def _speech(waveform: torch.Tensor, rate: int) -> tuple[np.ndarray | None, str | None]:
    """The 16 kHz speech the encoder sees (scaled to TARGET_DBFS, long silences cut), or (None, why there is none)."""
    if waveform.dim() != 1:
        raise WavTokenizerError(f"speaker similarity takes 1-D waveforms, got shape {tuple(waveform.shape)}")
    audio = resample(waveform[None].float(), rate, RATE)[0].numpy().astype(np.float64)
    if not np.isfinite(audio).all():
        return None, "non-finite samples"
    rms = float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0
    if rms < SILENT_RMS:
        return None, "silent"
    audio = audio * (10 ** (TARGET_DBFS / 20) / rms)
    audio = np.clip(audio, -1.0, 1.0)  # the VAD reads 16-bit samples: a rare peak above full scale would wrap
    speech = _resemblyzer().audio.trim_long_silences(audio)
    if speech.size == 0:
        return None, "no speech found by the VAD"
    return speech.astype(np.float32), None


def speaker_similarity_with_reason(reference: torch.Tensor, estimate: torch.Tensor,
                                   rate: int) -> tuple[float | None, str | None]:
    """(cosine of the two speaker embeddings, None), or (None, why it is n/a)."""
    if not available():
        return None, "resemblyzer not installed"
    embeddings = []
    for name, waveform in (("reference", reference), ("estimate", estimate)):
        speech, why = _speech(waveform, rate)
        if speech is None and name == "estimate":  # the reference speaks, the output does not: no voice kept
            return 0.0, f"speaker similarity 0: {why} in the estimate"
        if speech is None:
            return None, f"speaker similarity n/a: {why} in the {name}"
        embeddings.append(_encoder().embed_utterance(speech))  # unit length
    return float(np.dot(embeddings[0], embeddings[1])), None


def speaker_similarity(reference: torch.Tensor, estimate: torch.Tensor, rate: int) -> float | None:
    """Cosine similarity (0-1) of the speaker embeddings of two 1-D waveforms at `rate`; 0 when the estimate has no
    speech where the reference has some; None when resemblyzer is not installed or the reference has no speech
    (`speaker_similarity_with_reason` says which)."""
    return speaker_similarity_with_reason(reference, estimate, rate)[0]
