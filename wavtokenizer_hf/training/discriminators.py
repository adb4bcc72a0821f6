"""Discriminators of the WavTokenizer recipe: multi-period (HiFi-GAN), multi-resolution magnitude STFT (UnivNet /
Vocos) and multi-band complex STFT (DAC). Each returns, per sub-discriminator, its logits and feature maps."""

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
    def __init__(self, period: int, channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)):
        super().__init__()
        self.period = period
        layers, c_in = [], 1
        for i, c_out in enumerate(channels):
            stride = (3, 1) if i < len(channels) - 1 else (1, 1)
            layers.append(weight_norm(nn.Conv2d(c_in, c_out, (5, 1), stride, padding=(2, 0))))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.post = weight_norm(nn.Conv2d(c_in, 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, length = audio.shape
        pad = (-length) % self.period
        x = nn.functional.pad(audio[:, None], (0, pad), mode="reflect" if pad < length else "constant")
        x = x.view(batch, 1, -1, self.period)
        return _conv_stack(x, self.convs, self.post)


class MultiPeriodDiscriminator(_Family):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)



class ResolutionDiscriminator(nn.Module):
    """2-D convolutions over a magnitude spectrogram (time x frequency)."""

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
        window = torch.hann_window(self.n_fft, device=audio.device)
        spec = torch.stft(audio.float(), self.n_fft, self.hop, window=window, return_complex=True).abs()
        x = spec.transpose(1, 2)[:, None]  # (B, 1, frames, bins)
        return _conv_stack(x, self.convs, self.post)


class MultiResolutionDiscriminator(_Family):
    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((1024, 256), (2048, 512), (512, 128)),
                 channels: int = 64):
        super().__init__()
        self.discriminators = nn.ModuleList(ResolutionDiscriminator(n, h, channels) for n, h in resolutions)



class BandedComplexDiscriminator(nn.Module):
    """Complex STFT (real and imaginary channels) split into frequency bands, each with its own conv stack."""

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
        audio = audio - audio.mean(dim=-1, keepdim=True)
        audio = 0.8 * audio / audio.abs().amax(dim=-1, keepdim=True).clamp(min=1e-9)
        window = torch.hann_window(self.window, device=audio.device)
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


class MultiBandDiscriminator(_Family):
    def __init__(self, windows: tuple[int, ...] = (2048, 1024, 512), channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(BandedComplexDiscriminator(w, channels) for w in windows)



class DiscriminatorSet(nn.ModuleDict):
    """The discriminators of a run; one forward returns every family's (logits, features) for a batch, so real
    and generated audio go through in a single concatenated pass (one forward per phase, as DDP likes it)."""

    def forward(self, audio: torch.Tensor) -> dict[str, Outputs]:
        return {name: disc(audio) for name, disc in self.items()}
