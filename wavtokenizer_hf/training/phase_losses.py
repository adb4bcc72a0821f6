"""Reconstruction terms that see phase, which the log-mel L1 of the paper's recipe ignores (not in the paper; off in
every preset, switched on with `loss.phase` > 0 and chosen with `loss.phase_kind`).

- "complex": L1 between power-law compressed complex spectra, |X|^c e^(i angle X), at several STFT resolutions.
  Zero only when magnitude and phase both match; the compression keeps quiet bins in play without letting their
  (random) phase dominate.
- "anti_wrapping": instantaneous phase, group delay (phase difference across frequency) and instantaneous
  frequency (phase difference across time) errors, each wrapped to [-pi, pi] before the absolute value, and
  weighted by the target's magnitude so that the undefined phase of silent bins does not count.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import WavTokenizerError

PHASE_KINDS = ("complex", "anti_wrapping")


def stft(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=audio.device, dtype=torch.float32)
    return torch.stft(audio.float(), n_fft, hop, window=window, center=True, return_complex=True)


def wrapped_abs(angle: torch.Tensor) -> torch.Tensor:
    """|angle| after wrapping it into [-pi, pi]: 2 pi and 0 are the same phase."""
    return (angle - 2 * math.pi * torch.round(angle / (2 * math.pi))).abs()


class ComplexSpectrumLoss(nn.Module):
    def __init__(self, resolutions: tuple[tuple[int, int], ...], compress: float = 0.3, eps: float = 1e-7):
        super().__init__()
        self.resolutions, self.compress, self.eps = resolutions, compress, eps

    def _compressed(self, spectrum: torch.Tensor) -> torch.Tensor:
        return spectrum * (spectrum.abs() + self.eps) ** (self.compress - 1)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=estimate.device.type, enabled=False):
            terms = []
            for n_fft, hop in self.resolutions:
                difference = self._compressed(stft(estimate, n_fft, hop)) - self._compressed(stft(target, n_fft, hop))
                terms.append(difference.real.abs().mean() + difference.imag.abs().mean())
            return torch.stack(terms).mean()


class AntiWrappingPhaseLoss(nn.Module):
    def __init__(self, resolutions: tuple[tuple[int, int], ...], eps: float = 1e-7):
        super().__init__()
        self.resolutions, self.eps = resolutions, eps

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(self.terms(estimate, target).values())

    def terms(self, estimate: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three errors, each averaged over the resolutions: instantaneous phase, group delay (across
        frequency), instantaneous frequency (across time)."""
        with torch.autocast(device_type=estimate.device.type, enabled=False):
            terms = {"instantaneous": [], "group_delay": [], "frequency": []}
            for n_fft, hop in self.resolutions:
                guess, truth = stft(estimate, n_fft, hop), stft(target, n_fft, hop)
                weight = truth.abs()
                weight = weight / (weight.mean(dim=(-2, -1), keepdim=True) + self.eps)
                # angle() of an exact zero has no useful gradient; a tiny real offset keeps it finite
                phase_guess, phase_truth = (guess + self.eps).angle(), (truth + self.eps).angle()
                error = phase_guess - phase_truth
                terms["instantaneous"].append((weight * wrapped_abs(error)).mean())
                terms["group_delay"].append((weight[..., 1:, :] * wrapped_abs(error.diff(dim=-2))).mean())
                terms["frequency"].append((weight[..., 1:] * wrapped_abs(error.diff(dim=-1))).mean())
            return {name: torch.stack(values).mean() for name, values in terms.items()}


def phase_loss(kind: str, resolutions: tuple[tuple[int, int], ...]) -> nn.Module:
    if kind == "complex":
        return ComplexSpectrumLoss(resolutions)
    if kind == "anti_wrapping":
        return AntiWrappingPhaseLoss(resolutions)
    raise WavTokenizerError(f"loss.phase_kind must be one of {', '.join(PHASE_KINDS)}, not {kind!r}")
