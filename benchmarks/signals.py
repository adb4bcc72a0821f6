"""Synthetic test audio shared by the benchmarks (24 kHz)."""

import math

import torch

RATE = 24000


def music_like(seconds: float, rate: int = RATE, seed: int = 0) -> torch.Tensor:
    """Held chords with tremolo, changing every 4 s: where an LSTM carries state for long."""
    t = torch.arange(int(seconds * rate)) / rate
    roots = torch.tensor([220.0, 196.0, 174.6, 246.9])[(t // 4).long() % 4]
    chord = sum(0.1 * torch.sin(2 * math.pi * roots * ratio * t) for ratio in (1.0, 1.26, 1.5))
    noise = 0.003 * torch.randn(t.shape, generator=torch.Generator().manual_seed(seed))
    return chord * (1 + 0.3 * torch.sin(2 * math.pi * 0.2 * t)) + noise


def alternating(speech: torch.Tensor, seconds: float, block_seconds: float = 300.0, rate: int = RATE) -> torch.Tensor:
    """`seconds` of audio made of `block_seconds` blocks alternating looped `speech` and `music_like` audio."""
    block, total = int(block_seconds * rate), int(seconds * rate)
    pieces, filled = [], 0
    while filled < total:
        source = speech if len(pieces) % 2 == 0 else music_like(block_seconds, rate, seed=len(pieces))
        pieces.append(source.repeat(math.ceil(block / source.numel()))[:block])
        filled += block
    return torch.cat(pieces)[:total]
