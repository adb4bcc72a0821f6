"""Perceptual scores from optional packages: wide-band PESQ (`pesq`, built from source: needs a C compiler),
STOI (`pystoi`) and a no-reference MOS predictor (`distillmos`). A missing package gives None, never a guess."""

from __future__ import annotations

import torch

from ..audio_io import resample
from ..extras import available as has

PESQ_RATE = 16000
_MOS_MODEL = None


def pesq_wb(reference: torch.Tensor, estimate: torch.Tensor, rate: int) -> float | None:
    if not has("pesq"):
        return None
    from pesq import NoUtterancesError, pesq

    ref = resample(reference[None], rate, PESQ_RATE)[0].double().numpy()
    est = resample(estimate[None], rate, PESQ_RATE)[0].double().numpy()
    try:
        return float(pesq(PESQ_RATE, ref, est, "wb"))
    except NoUtterancesError:
        return None


def stoi(reference: torch.Tensor, estimate: torch.Tensor, rate: int) -> float | None:
    if not has("pystoi"):
        return None
    from pystoi import stoi as compute_stoi

    return float(compute_stoi(reference.double().numpy(), estimate.double().numpy(), rate, extended=False))


def mos(waveform: torch.Tensor, rate: int) -> float | None:
    """DistillMOS prediction (16 kHz model, weights inside its wheel); None when not installed."""
    global _MOS_MODEL
    if not has("distillmos"):
        return None
    import distillmos

    if _MOS_MODEL is None:
        _MOS_MODEL = distillmos.ConvTransformerSQAModel().eval()
    audio = resample(waveform[None].float(), rate, PESQ_RATE)
    with torch.no_grad():
        return float(_MOS_MODEL(audio).squeeze())
