"""Losses of the recipe: log-mel L1 (computed in fp32), adversarial losses and feature matching. As in the authors'
code, the MPD and MRD families use hinge losses averaged over their sub-discriminators and match every feature map;
the DAC family uses least squares summed over its sub-discriminators and matches every map but the logits."""

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


LEAST_SQUARES_FAMILIES = ("dac",)


def discriminator_loss(family: str, real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    if family in LEAST_SQUARES_FAMILIES:
        return torch.stack([(f ** 2).mean() + ((1 - r) ** 2).mean() for r, f in zip(real, fake)]).sum()
    return discriminator_hinge(real, fake)


def generator_adversarial(family: str, fake: list[torch.Tensor]) -> torch.Tensor:
    if family in LEAST_SQUARES_FAMILIES:
        return torch.stack([((1 - f) ** 2).mean() for f in fake]).sum()
    return generator_hinge(fake)


def feature_matching(family: str, real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between real (detached) and fake feature maps, summed over layers: averaged over sub-discriminators, or
    for the DAC family summed over them, without the last map (the logits)."""
    if family in LEAST_SQUARES_FAMILIES:
        terms = [sum((r.detach() - f).abs().mean() for r, f in zip(rs[:-1], fs[:-1])) for rs, fs in zip(real, fake)]
        return torch.stack(terms).sum()
    terms = [sum((r.detach() - f).abs().mean() for r, f in zip(rs, fs)) for rs, fs in zip(real, fake)]
    return torch.stack(terms).mean()


def discriminator_hinge(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Mean over sub-discriminators of mean(relu(1 - D(x))) + mean(relu(1 + D(G(x))))."""
    terms = [torch.relu(1 - r).mean() + torch.relu(1 + f).mean() for r, f in zip(real, fake)]
    return torch.stack(terms).mean()


def generator_hinge(fake: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([torch.relu(1 - f).mean() for f in fake]).mean()
