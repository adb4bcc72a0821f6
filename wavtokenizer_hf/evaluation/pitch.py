"""F0 and voicing from a YIN-style tracker, and how well a reconstruction keeps them."""

from __future__ import annotations

import math

import numpy as np
import torch

FRAME_SECONDS, HOP_SECONDS = 0.04, 0.01
F0_MIN, F0_MAX = 60.0, 450.0
YIN_THRESHOLD = 0.2


def track_pitch(waveform: torch.Tensor, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms frame: F0 in Hz (0 where unvoiced) and a voiced flag.

    Voiced = the cumulative-mean-normalised difference function dips below 0.2 inside 60-450 Hz and the frame is
    within 40 dB of the loudest frame."""
    frame, hop = int(FRAME_SECONDS * rate), int(HOP_SECONDS * rate)
    x = torch.nn.functional.pad(waveform.double(), (frame // 2, frame // 2))
    frames = x.unfold(0, frame, hop)  # (n, frame)
    max_lag = int(rate / F0_MIN)
    width = frame - max_lag
    # difference function d(tau) = sum_{j<width} (x_j - x_{j+tau})^2 = E_0 + E_tau - 2 r(tau), r by FFT
    size = 2 * frame
    head = torch.fft.rfft(frames[:, :width], size)
    r = torch.fft.irfft(head.conj() * torch.fft.rfft(frames, size), size)[:, : max_lag + 1]
    squares = torch.nn.functional.pad(frames.pow(2).cumsum(1), (1, 0))
    lags = torch.arange(max_lag + 1)
    energy_tau = squares[:, lags + width] - squares[:, lags]
    diff = (energy_tau[:, :1] + energy_tau - 2 * r).clamp(min=0)
    cumulative = torch.cumsum(diff[:, 1:], dim=1) / lags[1:]
    cmnd = torch.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / cumulative.clamp(min=1e-12)
    min_lag = int(rate / F0_MAX)
    search = cmnd[:, min_lag:]
    below = search < YIN_THRESHOLD
    # first dip below the threshold, then walk to its local minimum
    first = torch.where(below.any(1), below.float().argmax(1), search.argmin(1))
    lag = first.clone()
    last = search.shape[1] - 1
    while True:  # walk downhill to the dip's local minimum
        step = (lag < last) & (search.gather(1, (lag + 1).clamp(max=last)[:, None])[:, 0]
                               < search.gather(1, lag[:, None])[:, 0])
        if not step.any():
            break
        lag = lag + step.long()
    best = search.gather(1, lag[:, None])[:, 0]
    # parabolic interpolation around the minimum for sub-sample lag precision
    left = search.gather(1, (lag - 1).clamp(min=0)[:, None])[:, 0]
    right = search.gather(1, (lag + 1).clamp(max=last)[:, None])[:, 0]
    curvature = left - 2 * best + right
    inner = (lag > 0) & (lag < last) & (curvature > 0)
    offset = torch.where(inner, 0.5 * (left - right) / curvature.clamp(min=1e-12), torch.zeros_like(best))
    energy = frames.pow(2).mean(1)
    loud = energy > energy.max() * 1e-4
    voiced = (best < YIN_THRESHOLD) & loud
    f0 = torch.where(voiced, rate / (lag + min_lag + offset).double(), torch.zeros_like(best))
    return f0.numpy(), voiced.numpy()


GROSS_CENTS = 50.0
PITCH_KEYS = ("vuv_f1", "vuv_mcc", "f0_gross_error", "f0_fine_rmse_cents", "f0_rmse_cents", "f0_spread_ratio",
              "voiced_share", "voiced_share_reference")


def _cents(f0: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return 1200 * np.abs(np.log2(f0 / reference))


def _mcc(truth: np.ndarray, guess: np.ndarray) -> float:
    """Matthews correlation of two boolean tracks; 0 when either is constant (no information)."""
    tp, tn = float(np.sum(truth & guess)), float(np.sum(~truth & ~guess))
    fp, fn = float(np.sum(~truth & guess)), float(np.sum(truth & ~guess))
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def pitch_agreement(reference: torch.Tensor, estimate: torch.Tensor, rate: int) -> dict[str, float]:
    """How well `estimate` keeps the reference's voicing and F0 (10 ms frames):

    - `f0_gross_error`: share of the reference's voiced frames where the estimate is unvoiced or more than 50 cents
      off; a silent or unvoiced output scores 1.0 (an error, not a missing value);
    - `f0_fine_rmse_cents`: RMSE in cents over the remaining (fine) frames; `f0_rmse_cents`: over every frame
      voiced in both (NaN when there is none);
    - `vuv_f1`: voicing F1 with the reference as truth (an output voiced everywhere still scores 2p/(1+p));
      `vuv_mcc`: Matthews correlation of the two voicing tracks (0 for an output voiced, or unvoiced, everywhere);
    - `f0_spread_ratio`: the estimate's F0 spread (standard deviation in cents over its voiced frames) over the
      reference's: near 0 for a monotone buzz, near 1 when the intonation is kept (NaN when the estimate has fewer
      than two voiced frames); `voiced_share` / `voiced_share_reference`: the share of frames voiced in each.
    All NaN (left out of averages) when the reference has no voiced frame, e.g. noise."""
    f0_ref, v_ref = track_pitch(reference, rate)
    f0_est, v_est = track_pitch(estimate, rate)
    n = min(len(v_ref), len(v_est))
    f0_ref, v_ref, f0_est, v_est = f0_ref[:n], v_ref[:n], f0_est[:n], v_est[:n]
    if not v_ref.any():
        return {key: float("nan") for key in PITCH_KEYS}
    tp = float(np.sum(v_ref & v_est))
    precision = tp / max(float(np.sum(v_est)), 1.0)
    recall = tp / max(float(np.sum(v_ref)), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    both = v_ref & v_est
    cents = _cents(f0_est[both], f0_ref[both])
    fine = cents[cents <= GROSS_CENTS]
    spread_ref = float(np.std(1200 * np.log2(f0_ref[v_ref]))) if v_ref.sum() > 1 else float("nan")
    spread_est = float(np.std(1200 * np.log2(f0_est[v_est]))) if v_est.sum() > 1 else float("nan")
    return {
        "vuv_f1": f1,
        "vuv_mcc": _mcc(v_ref, v_est),
        "f0_gross_error": 1.0 - len(fine) / float(np.sum(v_ref)),
        "f0_fine_rmse_cents": float(np.sqrt(np.mean(fine**2))) if len(fine) else float("nan"),
        "f0_rmse_cents": float(np.sqrt(np.mean(cents**2))) if len(cents) else float("nan"),
        "f0_spread_ratio": spread_est / spread_ref if spread_ref > 0 else float("nan"),
        "voiced_share": float(v_est.mean()),
        "voiced_share_reference": float(v_ref.mean()),
    }
