"""Spectral distances between a reference and a reconstruction (both 1-D, same rate, same length)."""

from __future__ import annotations

import math

import torch
import torchaudio

_MEL_CACHE: dict[int, torchaudio.transforms.MelSpectrogram] = {}
STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))

# The log spectral distances look only this far below the reference's loudest bin. Below it lies the recording's own
# background (ARCTIC's quietest tenth of frames sits 54-67 dB below its loudest mel bin, the 8-12 kHz band of a
# 16 kHz recording further down still), whose exact realisation no codec is asked to reproduce; and 60 dB under
# speech peaks of a loud 80 dB SPL is 20 dB SPL, quieter than a quiet room. Inaudible white noise at -70 dBFS added
# to ARCTIC a0007 scores 0.03 in mel distance at 60 dB, but 0.29 at 80 dB (the default codec: 0.48 and 0.73).
DYNAMIC_RANGE_DB = 60.0
# An output STFT bin this far below the reference's peak magnitude holds no sound (less than the rounding of a
# 16-bit recording, whose range is 96 dB): its phase is rounding noise or the sign of a zero.
SILENT_BELOW_PEAK_DB = 100.0


def _mel(rate: int) -> torchaudio.transforms.MelSpectrogram:
    if rate not in _MEL_CACHE:
        # WavTokenizer's mel configuration at 24 kHz: n_fft 1024, hop 256, 100 mels, magnitude
        _MEL_CACHE[rate] = torchaudio.transforms.MelSpectrogram(
            sample_rate=rate, n_fft=1024, hop_length=256, n_mels=100, power=1.0, center=True)
    return _MEL_CACHE[rate]


def _log_distance(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Mean |log max(reference, floor) - log max(estimate, floor)| over the rows (bands or bins, by frames) where
    the reference exceeds the floor in some frame; floor = the reference's peak less DYNAMIC_RANGE_DB."""
    floor = reference.max() * 10 ** (-DYNAMIC_RANGE_DB / 20)
    inside = reference.amax(dim=1) > floor  # the reference's bandwidth: an empty band neither dilutes nor dominates
    difference = (reference.clamp(min=floor).log() - estimate.clamp(min=floor).log()).abs()
    return difference[inside].mean()


def mel_distance(reference: torch.Tensor, estimate: torch.Tensor, rate: int) -> float:
    """Mean |log mel(reference) - log mel(estimate)| (natural log; mel magnitudes, n_fft 1024, hop 256, 100 bands),
    both clamped at a floor DYNAMIC_RANGE_DB (60 dB) below the reference's loudest mel value, averaged over every
    frame of the bands where the reference rises above that floor in some frame. So: twice as loud is ln 2 away,
    an output missing a band the reference has is penalised, one adding a band it lacks is not, and differences
    more than 60 dB below the reference's peak do not count. NaN for a silent reference. The mel loss of training
    (wavtokenizer_hf.training.losses) clamps at an absolute 1e-7 instead: the two values differ."""
    mel = _mel(rate)
    return float(_log_distance(mel(reference), mel(estimate)))


def multi_resolution_stft_distance(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Mean over 3 resolutions (n_fft, hop: 512, 128; 1024, 256; 2048, 512; Hann windows) of spectral convergence
    ||A - B|| / ||A|| plus the log magnitude distance of `mel_distance` on the linear bins: mean |log A - log B|,
    both clamped at the reference's peak magnitude less DYNAMIC_RANGE_DB, over the frequency bins where the
    reference rises above that floor in some frame. NaN for a silent reference."""
    total = 0.0
    for n_fft, hop in STFT_RESOLUTIONS:
        window = torch.hann_window(n_fft)
        spec = lambda x: torch.stft(x, n_fft, hop, window=window, return_complex=True).abs()  # noqa: E731
        a, b = spec(reference), spec(estimate)
        convergence = torch.linalg.norm(a - b) / torch.linalg.norm(a).clamp(min=1e-7)
        total += float(convergence + _log_distance(a, b))
    return total / len(STFT_RESOLUTIONS)


def phase_advance_error(reference: torch.Tensor, estimate: torch.Tensor, n_fft: int = 1024, hop: int = 256) -> float:
    """How far each STFT bin's phase advance from one frame to the next is from the reference's, in radians
    (wrapped to [0, pi], weighted by the reference's magnitude in both frames). Where the output is silent
    (SILENT_BELOW_PEAK_DB, 100 dB, below the reference's peak magnitude) in either frame and the reference is not,
    the error is the maximal pi: digital silence scores pi, not the advance of the signs of floating-point zeros.
    0: the same instantaneous frequencies; about pi/2 (1.57) for a decoder whose phase does not move between frames
    (a frame-rate buzz) on voiced speech; about 1.0 between two unrelated noises (with 4x-overlapping frames any
    bin's advance leans towards its centre frequency's). A pure delay leaves it at ~0: it shifts phases, not their
    advance."""
    window = torch.hann_window(n_fft)
    a = torch.stft(reference, n_fft, hop, window=window, return_complex=True)
    b = torch.stft(estimate, n_fft, hop, window=window, return_complex=True)
    advance_a = a[..., 1:] * a[..., :-1].conj()
    advance_b = b[..., 1:] * b[..., :-1].conj()
    error = (advance_b * advance_a.conj()).angle().abs()
    threshold = a.abs().max() * 10 ** (-SILENT_BELOW_PEAK_DB / 20)
    missing = (b.abs() <= threshold) & (a.abs() > threshold)  # an exact copy misses nothing, even where both are silent
    error = torch.where(missing[..., 1:] | missing[..., :-1], math.pi, error)
    weight = advance_a.abs()
    return float((error * weight).sum() / weight.sum().clamp(min=1e-12))
