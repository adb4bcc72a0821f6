"""Perceptual scores from optional packages: wide-band PESQ (`pesq`, built from source: needs a C compiler),
STOI (`pystoi`) and a no-reference MOS predictor (`distillmos`). A missing package gives None, never a guess; a
score that cannot be computed for one utterance (silent or too short audio) is None with the reason, never an
abort of the whole evaluation and never a placeholder value averaged in."""

from __future__ import annotations

import torch

from ..audio_io import resample
from ..extras import available as has

PESQ_RATE = 16000
_MOS_MODEL = None


STOI_TOO_SHORT = 1e-5  # what pystoi returns when fewer than 30 frames of speech remain after its silence removal


def pesq_wb(reference: torch.Tensor, estimate: torch.Tensor, rate: int) -> tuple[float | None, str | None]:
    """(score, None), or (None, why it is n/a)."""
    if not has("pesq"):
        return None, "pesq not installed"
    from pesq import pesq

    ref = resample(reference[None], rate, PESQ_RATE)[0].double().numpy()
    est = resample(estimate[None], rate, PESQ_RATE)[0].double().numpy()
    try:  # silent, too short or non-speech audio: NoUtterancesError, BufferTooShortError, ValueError (NaN level)
        return float(pesq(PESQ_RATE, ref, est, "wb")), None
    except Exception as err:  # noqa: BLE001 - any failure of this one score is reported, not raised
        return None, f"PESQ failed: {type(err).__name__}: {err}".strip()


def stoi(reference: torch.Tensor, estimate: torch.Tensor, rate: int) -> tuple[float | None, str | None]:
    """(score, None), or (None, why it is n/a)."""
    if not has("pystoi"):
        return None, "pystoi not installed"
    import warnings

    from pystoi import stoi as compute_stoi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(compute_stoi(reference.double().numpy(), estimate.double().numpy(), rate, extended=False))
    if value == STOI_TOO_SHORT:
        return None, "STOI n/a: under 30 frames of speech in the reference"
    return value, None


def mos(waveform: torch.Tensor, rate: int) -> float | None:
    """DistillMOS prediction (16 kHz model, weights inside its wheel); None when not installed or the clip is empty.

    The model scores windows of 7.68 s (`distillmos.sqa.SEQ_LEN` samples at 16 kHz) and zero-pads a shorter input,
    which then is mostly silence and scores as such. A shorter clip is therefore tiled: repeated end to end and cut
    at the window's length, so the model hears only the clip. Longer clips go in as they are (the model averages
    its windows). Digital silence still gets a score (about 1.97) that says nothing: the runner flags it."""
    global _MOS_MODEL
    if not has("distillmos"):
        return None
    import distillmos
    from distillmos.sqa import SEQ_LEN

    if _MOS_MODEL is None:
        _MOS_MODEL = distillmos.ConvTransformerSQAModel().eval()
    audio = resample(waveform[None].float(), rate, PESQ_RATE)
    length = audio.shape[1]
    if length == 0:
        return None
    if length < SEQ_LEN:
        audio = audio.repeat(1, -(-SEQ_LEN // length))[:, :SEQ_LEN]
    with torch.no_grad():
        return float(_MOS_MODEL(audio).squeeze())
