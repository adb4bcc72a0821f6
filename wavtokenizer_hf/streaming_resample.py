"""Resampling block by block with state, giving exactly the samples `audio_io.resample` gives the whole signal.

torchaudio's sinc resampler is a strided convolution (computed here as one matrix product per group): output step k (`new / gcd` samples) reads the input from
`k * orig - width` to `k * orig + orig + width` (in reduced units, zeros outside the signal). Keeping that look-back
and waiting for that look-ahead, each step is computed once, from the same samples, with the same kernel. The steps
are computed in groups of about `GROUP_INPUT_SAMPLES` input samples (the last zero-padded to a full group), so every matrix product has one
shape and its floating-point sums do not depend on how the signal was cut: `audio_io.resample` runs this same code
on the whole signal, and a stream gives it bit for bit (torchaudio's one call over the whole signal differs from both
by at most 2.4e-7). Rate pairs whose kernel would be huge use soxr's streaming resampler, whose output equals its
one-shot output.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .audio_io import SINC_KERNEL_LIMIT, sinc_kernel_elements
from .errors import WavTokenizerError

GROUP_INPUT_SAMPLES = 32768  # input per convolution call (the stream's extra latency: 0.74 s at 44.1 kHz)


class StreamingResampler:
    """`push(block) -> resampled samples`, `flush() -> the rest`: 1-D float32 audio from `orig_rate` to `new_rate`."""

    def __init__(self, orig_rate: int, new_rate: int):
        if orig_rate <= 0 or new_rate <= 0:
            raise WavTokenizerError(f"sampling rates must be positive, got {orig_rate} -> {new_rate}")
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        self.received = 0
        self.emitted = 0
        self.finished = False
        self.identity = orig_rate == new_rate
        self.soxr = None
        if self.identity:
            return
        if sinc_kernel_elements(orig_rate, new_rate) > SINC_KERNEL_LIMIT:
            import soxr

            self.soxr = soxr.ResampleStream(orig_rate, new_rate, 1, dtype="float64", quality="VHQ")
            return
        from torchaudio.functional.functional import _get_sinc_resample_kernel

        gcd = math.gcd(self.orig_rate, self.new_rate)
        self.orig, self.new = self.orig_rate // gcd, self.new_rate // gcd
        self.kernel, self.width = _get_sinc_resample_kernel(self.orig_rate, self.new_rate, gcd,
                                                            dtype=torch.float32)
        self.taps = self.kernel[:, 0, :].t().contiguous()  # (kernel length, new): one matrix product per group
        self.buffer = torch.zeros(self.width)  # the left zero padding, then input from position `start` on
        self.start = -self.width  # input position of buffer[0]
        self.steps = 0  # output steps done
        self.group = max(1, GROUP_INPUT_SAMPLES // self.orig)  # steps per convolution call

    def push(self, block: torch.Tensor | np.ndarray) -> torch.Tensor:
        if self.finished:
            raise WavTokenizerError("this resampler was flushed")
        block = torch.as_tensor(block, dtype=torch.float32).reshape(-1)
        self.received += block.numel()
        if self.identity:
            return block
        if self.soxr is not None:
            return torch.from_numpy(self.soxr.resample_chunk(block.double().numpy()).astype(np.float32))
        self.buffer = torch.cat([self.buffer, block])
        # step k needs input up to k * orig + orig + width (exclusive)
        ready = (self.received - self.orig - self.width) // self.orig + 1
        return self._steps(ready // self.group * self.group)

    def flush(self) -> torch.Tensor:
        if self.finished:
            return torch.zeros(0)
        self.finished = True
        if self.identity:
            return torch.zeros(0)
        if self.soxr is not None:
            return torch.from_numpy(self.soxr.resample_chunk(np.zeros(0), last=True).astype(np.float32))
        total = self.received // self.orig + 1
        padded = -(-total // self.group) * self.group
        self.buffer = torch.cat([self.buffer, torch.zeros(self.width + self.orig + (padded - total) * self.orig)])
        out = self._steps(padded)
        target = math.ceil(self.new * self.received / self.orig)  # as torchaudio truncates the whole signal
        return out[: max(0, target - self.emitted + out.numel())]

    def _steps(self, upto: int) -> torch.Tensor:
        if upto <= self.steps:
            return torch.zeros(0)
        pieces = []
        for group in range(self.steps, upto, self.group):
            begin = group * self.orig - self.width - self.start
            span = self.buffer[begin: begin + (self.group - 1) * self.orig + self.orig + 2 * self.width]
            frames = span.unfold(0, self.kernel.shape[-1], self.orig).contiguous()  # (group, kernel length)
            pieces.append((frames @ self.taps).reshape(-1))
        out = torch.cat(pieces)
        self.steps = upto
        keep = self.steps * self.orig - self.width - self.start  # the look-back the next step needs starts here
        self.buffer, self.start = self.buffer[keep:], self.start + keep
        self.emitted += out.numel()
        return out
