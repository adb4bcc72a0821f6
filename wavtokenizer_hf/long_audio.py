"""Encode audio of any length chunk by chunk, in memory that does not grow with the file, with the whole-file codes.

The WavTokenizer encoder is convolutions (tiled exactly: each chunk carries `halo_frames` of real audio on both
sides, see `inference.py`), then a forward-only LSTM, then an ELU and one stride-1 convolution. The LSTM's state
(h, c) is carried from one chunk to the next, and the last convolution's few frames of context are held back until
the next chunk brings them, so every frame sees exactly what it sees in a whole-file encode (windowed encoding with
a fixed context does not: an LSTM carries state far longer than a few seconds on sustained sounds).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import WavTokenizerError
from .inference import FastWavTokenizer, decode_autocast
from .inference.exact import without_tf32
from .inference.decoder import pos_net
from .inference.encoder_plan import Conv, Elu, Lstm

DEFAULT_CHUNK_SECONDS = 20.0
# inputs longer than this go through the streaming path in Codec.encode, the CLI and DatasetTokenizer
STREAMING_THRESHOLD_SECONDS = 60.0


class StreamingEncoder:
    """`encode(waveform)` of a 1-D waveform at the model's rate -> its codes (frames,), chunk by chunk."""

    def __init__(self, fast: FastWavTokenizer, chunk_seconds: float = DEFAULT_CHUNK_SECONDS):
        steps = fast.recurrent_plan
        if ([type(step) for step in steps] != [Lstm, Elu, Conv]) or steps[2].stride != 1:
            kinds = [type(step).__name__ for step in steps]
            raise ValueError(f"streaming encode expects LSTM, ELU, stride-1 conv after the convolutions, got {kinds}")
        if not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds!r}")
        self.fast = fast
        self.lstm = steps[0].lstm
        self.last_conv: Conv = steps[2]
        self.left, self.right = self.last_conv.padding_left, self.last_conv.padding_total // 2
        rate, stride = fast.config.sampling_rate, fast.conv_stride
        self.chunk_frames = max(self.left + self.right + 1, round(chunk_seconds * rate / stride))

    @torch.inference_mode()
    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        with without_tf32():
            return self._encode(waveform)

    def _encode(self, waveform: torch.Tensor) -> torch.Tensor:
        fast = self.fast
        waveform = waveform.to(fast.device, torch.float32)
        total = fast.conv_frame_count(waveform.shape[-1])
        if total <= self.left + self.right + 1:
            return fast.encode(waveform[None])[0][0].cpu()  # too short to stream: the ordinary path
        state = None
        held = waveform.new_zeros(self.lstm.hidden_size, 0)  # LSTM outputs not yet turned into codes
        held_start = 0  # global frame index of held[:, 0]
        done = 0  # frames whose codes are out
        codes = []
        for first in range(0, total, self.chunk_frames):
            last = min(total, first + self.chunk_frames)
            seq = fast.conv_frames_of(waveform, first, last).t()[:, None, :]  # (frames, 1, D)
            out, state = self.lstm(seq, state)
            held = torch.cat([held, (out + seq)[:, 0].t()], dim=1)
            ready = total if last == total else last - self.right  # frames whose right context has arrived
            window = F.elu(held)
            pad_left = self.left if done == 0 else 0
            pad_right = self.right if ready == total else 0
            window = F.pad(window[None], (pad_left, pad_right), mode="reflect")
            latents = F.conv1d(window, self.last_conv.weight, self.last_conv.bias)[0]
            codes.append(fast.codes_of(latents[:, : ready - done].t()).cpu())
            done = ready
            keep_from = done - self.left  # the left context the next window needs
            held, held_start = held[:, keep_from - held_start:], keep_from
        return torch.cat(codes)


class LiveEncoder:
    """Codes of audio as it arrives: `push(samples)` returns the codes that became final, `flush()` the rest; the
    codes of all calls together are the whole-signal codes (`Codec.encode` of the concatenated samples at the model's
    rate). A frame is final once the audio `halo_frames` past it has arrived (the convolutions' reach) and the last
    convolution's right context after it: the latency is that look-ahead plus the chunk the caller pushes. Memory
    holds the look-back of the convolutions only, whatever the stream's length."""

    def __init__(self, fast: FastWavTokenizer):
        self.core = StreamingEncoder(fast, chunk_seconds=DEFAULT_CHUNK_SECONDS)
        self.fast = fast
        self.stride, self.halo = fast.conv_stride, fast.halo_frames
        self.buffer = torch.zeros(0, device=fast.device)  # samples from `buffer_frame * stride` on
        self.buffer_frame = 0
        self.received = 0
        self.computed = 0  # LSTM input frames done
        self.emitted = 0  # codes out
        self.state = None
        self.held = torch.zeros(self.core.lstm.hidden_size, 0, device=fast.device)
        self.held_start = 0
        self.everything: list[torch.Tensor] | None = []  # the whole input while it is short (see flush)
        self.finished = False

    @property
    def lookahead_samples(self) -> int:
        """Samples after a frame's last sample that must arrive before its code is final."""
        return (self.halo + self.core.right + 1) * self.stride

    @torch.inference_mode()
    def push(self, samples: torch.Tensor | np.ndarray) -> torch.Tensor:
        """New codes (possibly none) after these samples (1-D float audio at the model's rate, any length)."""
        if self.finished:
            raise WavTokenizerError("this live encoder was flushed; make a new one for another stream")
        chunk = torch.as_tensor(np.asarray(samples) if not isinstance(samples, torch.Tensor) else samples)
        if chunk.dim() != 1 or not chunk.is_floating_point():
            raise WavTokenizerError(f"push takes 1-D float audio at the model's rate, got {chunk.dtype} of shape "
                                    f"{tuple(chunk.shape)}")
        if chunk.numel() and not torch.isfinite(chunk).all():
            raise WavTokenizerError("push: NaN or Inf samples")
        chunk = chunk.to(self.fast.device, torch.float32)
        self.buffer = torch.cat([self.buffer, chunk])
        self.received += chunk.numel()
        if self.everything is not None:
            self.everything.append(chunk)
        with without_tf32():
            # frames whose convolutions' reach lies inside what has arrived: their values cannot change any more
            return self._advance(self.received // self.stride - self.halo, final=False)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """The remaining codes, the end of the stream being known."""
        if self.finished:
            return torch.zeros(0, dtype=torch.long)
        self.finished = True
        if self.received <= self.stride:  # as `Codec.encode` refuses it
            raise WavTokenizerError(f"the stream ended after {self.received} samples; at least {self.stride + 1} "
                                    f"(2 frames of {self.stride}) are needed")
        with without_tf32():
            total = self.fast.conv_frame_count(self.received)
            if self.emitted == 0 and total <= self.core.left + self.core.right + 1:
                whole = torch.cat(self.everything) if self.everything else self.buffer
                return self.fast.encode(whole[None])[0][0].cpu() if total > 0 else torch.zeros(0, dtype=torch.long)
            return self._advance(total, final=True)

    def _advance(self, upto: int, final: bool) -> torch.Tensor:
        core, fast = self.core, self.fast
        if upto <= self.computed and not final:
            return torch.zeros(0, dtype=torch.long)
        if upto > self.computed:
            local = self.computed - self.buffer_frame
            seq = fast.conv_frames_of(self.buffer, local, local + upto - self.computed).t()[:, None, :]
            out, self.state = core.lstm(seq, self.state)
            self.held = torch.cat([self.held, (out + seq)[:, 0].t()], dim=1)
            self.computed = upto
            keep = max(0, self.computed - self.halo)  # the look-back the next frames' convolutions need
            self.buffer = self.buffer[(keep - self.buffer_frame) * self.stride:]
            self.buffer_frame = keep
            if self.computed > core.left + core.right + 1 or final:
                self.everything = None
        ready = self.computed if final else self.computed - core.right
        if ready <= self.emitted or (not final and self.computed <= core.left + core.right + 1):
            return torch.zeros(0, dtype=torch.long)
        window = F.elu(self.held)
        pad_left = core.left if self.emitted == 0 else 0
        pad_right = core.right if final else 0
        window = F.pad(window[None], (pad_left, pad_right), mode="reflect")
        latents = F.conv1d(window, core.last_conv.weight, core.last_conv.bias)[0]
        codes = fast.codes_of(latents[:, : ready - self.emitted].t()).cpu()
        self.emitted = ready
        keep_from = self.emitted - core.left
        self.held, self.held_start = self.held[:, keep_from - self.held_start:], keep_from
        return codes


# --- decode -----------------------------------------------------------------------------------------------------
DEFAULT_DECODE_CHUNK_FRAMES = 1500  # 20 s at 75 frames/s


@torch.inference_mode()
def decode_long(fast: FastWavTokenizer, codes: torch.Tensor, bandwidth_id: int = 0,
                chunk_frames: int = DEFAULT_DECODE_CHUNK_FRAMES, precision: str = "fp32") -> torch.Tensor:
    """Exact whole-sequence decode of a long 1-D code sequence in memory linear in its length (never quadratic).

    The decoder's global parts run over the whole sequence: its GroupNorms with their statistics over all frames,
    its attention through a fused kernel (flash, or memory-efficient on GPUs in fp32; no frames x frames matrix: the
    backend that would build one is refused).
    Everything after them is local: the ConvNeXt blocks (each sees 3 frames either side), the per-frame head and the
    iSTFT overlap-add run chunk by chunk with enough context frames, added into one output buffer. `precision`:
    "fp32" (exact) or "bf16" (`inference.decode_autocast`)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model, device = fast.model, fast.device
    backbone, head = model.backbone, model.head
    codes = codes.to(device).long().reshape(1, -1)
    total = codes.shape[-1]
    condition = torch.tensor([bandwidth_id], device=device)
    autocast = lambda: decode_autocast(device, precision)  # noqa: E731 (a fresh context for each use)
    with autocast():
        x = backbone.embed(F.embedding(codes, fast.embed).transpose(1, 2))
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            x = pos_net(model, x, None)
    context = sum((block.dwconv.kernel_size[0] - 1) // 2 for block in backbone.convnext)
    hop, n_fft, padding = head.hop_length, head.n_fft, head.padding
    out = torch.zeros((total - 1) * hop + n_fft, device=device)
    window = head.window.to(device)
    for first in range(0, total, chunk_frames):
        last = min(total, first + chunk_frames)
        start, end = max(0, first - context), min(total, last + context)
        with autocast():
            h = backbone.norm(x[:, :, start:end].transpose(1, 2), condition).transpose(1, 2)
            for block in backbone.convnext:
                h = block(h, condition)
            hidden = backbone.final_layer_norm(h.transpose(1, 2))[:, first - start: first - start + last - first]
            spectrum_parts = head.linear(hidden)
        magnitude, phase = spectrum_parts.float().chunk(2, dim=-1)
        spectrum = torch.polar(torch.exp(magnitude).clamp(max=1e2), phase)
        frames = torch.fft.irfft(spectrum, n_fft, dim=-1, norm="backward")[0] * window  # (chunk, n_fft)
        size = (last - first - 1) * hop + n_fft
        folded = F.fold(frames.t()[None], output_size=(1, size), kernel_size=(1, n_fft), stride=(1, hop))
        out[first * hop: first * hop + size] += folded.reshape(-1)
    audio = out[padding: out.numel() - padding]
    WindowEnvelope(model, total, device).divide_(audio)  # in place: no frames x n_fft envelope matrix
    return audio.cpu()


ENVELOPE_FLOOR = 1e-11  # as the stock head's and `inference.decoder.window_envelope`'s clamp


class WindowEnvelope:
    """The iSTFT's summed squared window over `frames` frames, trimmed like the audio and clamped at 1e-11: the
    values of `inference.decoder.window_envelope`, held in O(n_fft) memory whatever the length.

    A sample in the interior is overlapped by every frame that can reach it, so the sum only depends on its position
    within a hop (period hop); samples within `edge` frames of either end see fewer frames. All three parts (first
    samples, one period, last samples) are read off one fold over `2 * edge` frames at most; `divide_` applies them
    to the audio in place, `full()` builds the whole envelope (the audio's size) where a tensor is wanted."""

    def __init__(self, model, frames: int, device: torch.device | str = "cpu"):
        head = model.head
        hop, n_fft, padding = head.hop_length, head.n_fft, head.padding
        self.hop, self.frames = hop, frames
        self.length = (frames - 1) * hop + n_fft - 2 * padding  # the trimmed audio's length
        reach = -(-n_fft // hop)  # how many frames overlap one sample, at most
        edge = reach + 2  # frames at each end whose samples may see fewer than `reach` frames, and a margin
        window_sq = head.window.to(device, torch.float32).square()

        def fold(count: int) -> torch.Tensor:  # the untrimmed envelope of `count` frames: count x n_fft values
            size = (count - 1) * hop + n_fft
            return F.fold(window_sq.expand(1, count, -1).transpose(1, 2), output_size=(1, size),
                          kernel_size=(1, n_fft), stride=(1, hop)).reshape(-1)

        if frames <= 2 * edge:  # short: the whole envelope is as small as the pieces
            self.first = fold(frames)[padding: padding + self.length].clamp(min=ENVELOPE_FLOOR)
            self.period = self.last = self.first[:0]
            self.interior = (self.length, self.length)
            return
        ends = fold(edge)  # the envelope of `edge` frames: its start is the long envelope's start, its end that end
        # untrimmed [0, edge * hop) see the same frames as in `ends`; so do the last edge * hop samples, which are
        # `ends` from n_fft - hop on (shifted), where no frame before the last `edge` reaches
        self.first = ends[padding: edge * hop].clamp(min=ENVELOPE_FLOOR)
        self.period = ends[reach * hop: (reach + 1) * hop].clamp(min=ENVELOPE_FLOOR)  # every reaching frame is there
        last_start = (frames - edge) * hop + n_fft - hop  # untrimmed
        self.last = ends[n_fft - hop: n_fft - hop + self.length + padding - last_start].clamp(min=ENVELOPE_FLOOR)
        self.interior = (edge * hop - padding, last_start - padding)  # trimmed; starts at untrimmed edge * hop,
        # a multiple of hop: sample j of the interior takes period[j % hop]

    def divide_(self, audio: torch.Tensor) -> torch.Tensor:
        """Divide the trimmed 1-D audio of `frames` frames by the envelope, in place; returns it."""
        if audio.shape != (self.length,):
            raise ValueError(f"the envelope of {self.frames} frames covers {self.length} samples, got audio of shape "
                             f"{tuple(audio.shape)}")
        return self._each(audio, torch.Tensor.div_)

    def full(self) -> torch.Tensor:
        """The whole trimmed envelope (`length` samples, allocated once)."""
        return self._each(torch.empty(self.length, device=self.first.device), torch.Tensor.copy_)

    def _each(self, audio: torch.Tensor, apply) -> torch.Tensor:
        """`apply(part of audio, envelope values)` over the first samples, the periodic interior, the last ones."""
        start, end = self.interior
        apply(audio[:start], self.first)
        if end > start:
            rows, rest = divmod(end - start, self.hop)
            apply(audio[start: start + rows * self.hop].view(rows, self.hop), self.period)
            apply(audio[start + rows * self.hop: end], self.period[:rest])
            apply(audio[end:], self.last)
        return audio
