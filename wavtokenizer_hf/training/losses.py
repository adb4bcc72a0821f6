"""Losses of the recipe: log-mel L1 (computed in fp32), hinge adversarial losses and feature matching."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class MelLoss(nn.Module):
    """L1 between log mel spectrograms (n_fft 1024, hop 256, 100 mels, magnitudes clamped at 1e-7)."""

    def __init__(self, sample_rate: int = 24000, n_fft: int = 1024, hop: int = 256, n_mels: int = 100):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop,
                                                        n_mels=n_mels, power=1.0, center=True)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=estimate.device.type, enabled=False):
            a = self.mel(estimate.float()).clamp(min=1e-7).log()
            b = self.mel(target.float()).clamp(min=1e-7).log()
            return (a - b).abs().mean()


class MultiScaleMelLoss(nn.Module):
    """Mean of log-mel L1 losses at several (n_fft, hop, n_mels) resolutions."""

    def __init__(self, sample_rate: int, scales: tuple[tuple[int, int, int], ...]):
        super().__init__()
        self.losses = nn.ModuleList(MelLoss(sample_rate, n_fft, hop, n_mels) for n_fft, hop, n_mels in scales)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.stack([loss(estimate, target) for loss in self.losses]).mean()


def discriminator_hinge(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Mean over sub-discriminators of mean(relu(1 - D(x))) + mean(relu(1 + D(G(x))))."""
    terms = [torch.relu(1 - r).mean() + torch.relu(1 + f).mean() for r, f in zip(real, fake)]
    return torch.stack(terms).mean()


def generator_hinge(fake: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([torch.relu(1 - f).mean() for f in fake]).mean()


def feature_matching(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean over sub-discriminators of the summed per-layer L1 between real (detached) and fake feature maps."""
    terms = [sum((r.detach() - f).abs().mean() for r, f in zip(rs, fs)) for rs, fs in zip(real, fake)]
    return torch.stack(terms).mean()
