"""Spectral distances between a reference and a reconstruction (both 1-D, same rate, same length)."""

from __future__ import annotations

import torch
import torchaudio

_MEL_CACHE: dict[int, torchaudio.transforms.MelSpectrogram] = {}
STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def _mel(rate: int) -> torchaudio.transforms.MelSpectrogram:
    if rate not in _MEL_CACHE:
        # the configuration of WavTokenizer's own mel loss at 24 kHz: n_fft 1024, hop 256, 100 mels, magnitude
        _MEL_CACHE[rate] = torchaudio.transforms.MelSpectrogram(
            sample_rate=rate, n_fft=1024, hop_length=256, n_mels=100, power=1.0, center=True)
    return _MEL_CACHE[rate]


def mel_distance(reference: torch.Tensor, estimate: torch.Tensor, rate: int) -> float:
    """Mean |log mel(reference) - log mel(estimate)| (natural log, magnitudes clamped at 1e-5)."""
    mel = _mel(rate)
    a, b = mel(reference).clamp(min=1e-5).log(), mel(estimate).clamp(min=1e-5).log()
    return float((a - b).abs().mean())


def multi_resolution_stft_distance(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Mean over 3 resolutions of spectral convergence + mean |log magnitude difference| (Hann windows)."""
    total = 0.0
    for n_fft, hop in STFT_RESOLUTIONS:
        window = torch.hann_window(n_fft)
        spec = lambda x: torch.stft(x, n_fft, hop, window=window, return_complex=True).abs()  # noqa: E731
        a, b = spec(reference), spec(estimate)
        convergence = torch.linalg.norm(a - b) / torch.linalg.norm(a).clamp(min=1e-7)
        log_distance = (a.clamp(min=1e-5).log() - b.clamp(min=1e-5).log()).abs().mean()
        total += float(convergence + log_distance)
    return total / len(STFT_RESOLUTIONS)


def phase_advance_error(reference: torch.Tensor, estimate: torch.Tensor, n_fft: int = 1024, hop: int = 256) -> float:
    """How far each STFT bin's phase advance from one frame to the next is from the reference's, in radians
    (wrapped to [0, pi], weighted by the reference's magnitude in both frames). 0: the same instantaneous
    frequencies; about pi/2 (1.57) for a decoder whose phase does not move between frames (a frame-rate buzz) on
    voiced speech; about 1.0 between two unrelated noises (with 4x-overlapping frames any bin's advance leans
    towards its centre frequency's). A pure delay leaves it at ~0: it shifts phases, not their advance."""
    window = torch.hann_window(n_fft)
    a = torch.stft(reference, n_fft, hop, window=window, return_complex=True)
    b = torch.stft(estimate, n_fft, hop, window=window, return_complex=True)
    advance_a = a[..., 1:] * a[..., :-1].conj()
    advance_b = b[..., 1:] * b[..., :-1].conj()
    error = (advance_b * advance_a.conj()).angle().abs()
    weight = advance_a.abs()
    return float((error * weight).sum() / weight.sum().clamp(min=1e-12))
