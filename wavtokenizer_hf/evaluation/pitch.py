"""F0 and voicing from a YIN-style tracker, and how well a reconstruction keeps them."""

from __future__ import annotations

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


def pitch_agreement(reference: torch.Tensor, estimate: torch.Tensor, rate: int) -> dict[str, float]:
    """V/UV F1 (reference as truth) and F0 RMSE in cents over frames voiced in both; NaN (left out of averages)
    when the reference has no voiced frame, e.g. noise."""
    f0_ref, v_ref = track_pitch(reference, rate)
    f0_est, v_est = track_pitch(estimate, rate)
    n = min(len(v_ref), len(v_est))
    f0_ref, v_ref, f0_est, v_est = f0_ref[:n], v_ref[:n], f0_est[:n], v_est[:n]
    if not v_ref.any():
        return {"vuv_f1": float("nan"), "f0_rmse_cents": float("nan")}
    tp = float(np.sum(v_ref & v_est))
    precision = tp / max(float(np.sum(v_est)), 1.0)
    recall = tp / max(float(np.sum(v_ref)), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    both = v_ref & v_est
    cents = 1200 * np.abs(np.log2(f0_est[both] / f0_ref[both])) if both.any() else np.array([np.nan])
    return {"vuv_f1": f1, "f0_rmse_cents": float(np.sqrt(np.mean(cents**2)))}
