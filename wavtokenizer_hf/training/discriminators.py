"""Discriminators of the WavTokenizer recipe, as the authors' code builds them: multi-period (HiFi-GAN, Vocos's
variant), multi-resolution magnitude STFT (UnivNet, Vocos's variant) and DAC's discriminator (five period and three
multi-band complex STFT sub-discriminators on DC-free, peak-normalised audio). Each family returns, per
sub-discriminator, its logits and the feature maps its loss matches.

One difference remains: the authors' MPD and MRD are conditional (a zero-initialised embedding of the bandwidth id
projected onto the last hidden layer, a learned per-channel term added to the logits); with one bandwidth these
have none."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

Outputs = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


def _conv_stack(x: torch.Tensor, convs: nn.ModuleList, post: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack then a post conv: (flattened logits, every layer's output as feature maps)."""
    features = []
    for conv in convs:
        x = nn.functional.leaky_relu(conv(x), 0.1)
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features


class _Family(nn.Module):
    """A family of sub-discriminators (`self.discriminators`): per member, its logits and its feature maps."""

    discriminators: nn.ModuleList

    def forward(self, audio: torch.Tensor) -> Outputs:
        outputs = [d(audio) for d in self.discriminators]
        return [o[0] for o in outputs], [o[1] for o in outputs]


class PeriodDiscriminator(nn.Module):
    """Audio folded into `period` columns, (5, 1) convolutions down the rows. Vocos's variant pads only to a
    multiple of the period and leaves the first layer out of its feature maps; DAC's always pads (a whole period
    when the length is a multiple) and keeps every layer."""

    def __init__(self, period: int, channels: tuple[int, ...] = (32, 128, 512, 1024, 1024), dac_variant: bool = False):
        super().__init__()
        self.period, self.dac_variant = period, dac_variant
        layers, c_in = [], 1
        for i, c_out in enumerate(channels):
            stride = (3, 1) if i < len(channels) - 1 else (1, 1)
            layers.append(weight_norm(nn.Conv2d(c_in, c_out, (5, 1), stride, padding=(2, 0))))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.post = weight_norm(nn.Conv2d(c_in, 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, length = audio.shape
        pad = self.period - length % self.period if self.dac_variant else (-length) % self.period
        x = nn.functional.pad(audio[:, None], (0, pad), mode="reflect" if pad < length else "constant")
        x = x.view(batch, 1, -1, self.period)
        logits, features = _conv_stack(x, self.convs, self.post)
        return logits, features if self.dac_variant else features[1:]


PERIODS = (2, 3, 5, 7, 11)


class MultiPeriodDiscriminator(_Family):
    def __init__(self, periods: tuple[int, ...] = PERIODS, channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)



class ResolutionDiscriminator(nn.Module):
    """2-D convolutions over a magnitude spectrogram (frequency x time), taken with a rectangular window."""

    def __init__(self, n_fft: int, hop: int, channels: int = 64):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        specs = [((7, 5), (2, 2)), ((5, 3), (2, 1)), ((5, 3), (2, 2)), ((3, 3), (2, 1)), ((3, 3), (2, 2))]
        layers, c_in = [], 1
        for kernel, stride in specs:
            padding = (kernel[0] // 2, kernel[1] // 2)
            layers.append(weight_norm(nn.Conv2d(c_in, channels, kernel, stride, padding)))
            c_in = channels
        self.convs = nn.ModuleList(layers)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        window = torch.ones(self.n_fft, device=audio.device)  # the authors pass no window
        spec = torch.stft(audio.float(), self.n_fft, self.hop, window=window, return_complex=True).abs()
        return _conv_stack(spec[:, None], self.convs, self.post)  # (B, 1, bins, frames)


class MultiResolutionDiscriminator(_Family):
    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((1024, 256), (2048, 512), (512, 128)),
                 channels: int = 64):
        super().__init__()
        self.discriminators = nn.ModuleList(ResolutionDiscriminator(n, h, channels) for n, h in resolutions)



class BandedComplexDiscriminator(nn.Module):
    """Complex STFT (real and imaginary channels, rectangular window, hop window/4) split into frequency bands, each
    with its own conv stack. Expects audio already made DC-free and peak-normalised (`DACDiscriminator`)."""

    BANDS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)

    def __init__(self, window: int, channels: int = 32):
        super().__init__()
        self.window, self.hop = window, window // 4
        bins = window // 2 + 1
        self.edges = [(int(a * bins), int(b * bins)) for a, b in zip(self.BANDS[:-1], self.BANDS[1:])]

        def stack() -> nn.ModuleList:
            return nn.ModuleList([
                weight_norm(nn.Conv2d(2, channels, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
            ])

        self.bands = nn.ModuleList(stack() for _ in self.edges)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        window = torch.ones(self.window, device=audio.device)  # no window, as the authors' torch.stft call
        spec = torch.stft(audio.float(), self.window, self.hop, window=window, return_complex=True)
        x = torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B, 2, frames, bins)
        features, outs = [], []
        for (lo, hi), stack in zip(self.edges, self.bands):
            h = x[..., lo:hi]
            for conv in stack:
                h = nn.functional.leaky_relu(conv(h), 0.1)
                features.append(h)
            outs.append(h)
        x = self.post(torch.cat(outs, dim=-1))
        features.append(x)
        return x.flatten(1), features


class DACDiscriminator(_Family):
    """DAC's discriminator as the authors use it: five period and three multi-band complex sub-discriminators, on
    audio with its mean removed and its peak scaled to 0.8 (no multi-scale members)."""

    def __init__(self, periods: tuple[int, ...] = PERIODS, windows: tuple[int, ...] = (2048, 1024, 512),
                 period_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024), band_channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList([
            *(PeriodDiscriminator(p, period_channels, dac_variant=True) for p in periods),
            *(BandedComplexDiscriminator(w, band_channels) for w in windows)])

    def forward(self, audio: torch.Tensor) -> Outputs:
        audio = audio - audio.mean(dim=-1, keepdim=True)
        audio = 0.8 * audio / (audio.abs().amax(dim=-1, keepdim=True) + 1e-9)
        return super().forward(audio)



class DiscriminatorSet(nn.ModuleDict):
    """The discriminators of a run; one forward returns every family's (logits, features) for a batch, so real
    and generated audio go through in a single concatenated pass (one forward per phase, as DDP likes it)."""

    def forward(self, audio: torch.Tensor) -> dict[str, Outputs]:
        return {name: disc(audio) for name, disc in self.items()}
