"""Decode codes as they arrive, each piece of audio from a bounded window of codes around it (approximate).

The decoder's attention and GroupNorm statistics are global, so no streaming decode gives the whole-sequence audio;
`LiveDecoder` bounds what it waits for instead. The codes are cut into pieces of `step_frames` frames on a fixed grid
(piece b is frames [b * step, (b + 1) * step)); a piece is decoded, with the ordinary decoder, from the window of
codes that holds `context_frames` frames before it and `lookahead_frames` frames after it (fewer at the stream's
ends), and only the piece's own samples are kept (frame f's samples are [f * hop, (f + 1) * hop), the alignment of
the whole-sequence audio). So:
- the windows depend on the codes and the stream's length only, never on how the codes were pushed: any chunking
  gives the same audio, and the pieces add up to the whole-sequence decode's length;
- a window covering the whole sequence gives the whole-sequence decode (the windows cover it when look-ahead and
  context are at least the stream's length);
- a piece is out once `lookahead_frames` codes past its last frame have arrived: the latency of a frame is
  (step_frames - 1 + lookahead_frames) / frame_rate at most, plus one window's compute; memory holds one window.

Kept samples, not a cross-fade: each window's own iSTFT overlap-add already makes its audio continuous inside the
window, cuts fall on hop boundaries (no resampling of the timeline, exact length), and a cross-fade would need the
same samples from two windows (either held back, adding latency, or decoded twice). What a cut costs against the
whole-sequence decode, and how it falls with look-ahead and context: `benchmarks/bench_live_decode.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .errors import WavTokenizerError

DEFAULT_LOOKAHEAD_FRAMES = 5
DEFAULT_CONTEXT_FRAMES = 50
DEFAULT_STEP_FRAMES = 5
MIN_WINDOW_FRAMES = 2  # as `Codec.decode`: the decoder is not asked for fewer


def _count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise WavTokenizerError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class LiveDecoder:
    """Audio of codes as they arrive: `push(codes)` returns the new audio (possibly none), `flush()` the rest; the
    outputs together have the whole-sequence decode's length (`frames * hop` samples) and approximate its audio.

    `decode_window(codes)` turns a 1-D int64 code window into its 1-D float audio (`len(codes) * hop` samples): the
    codec's ordinary decode. Build one with `Codec.stream_decoder`."""

    def __init__(self, decode_window: Callable[[torch.Tensor], torch.Tensor], hop_length: int, codebook_size: int,
                 lookahead_frames: int = DEFAULT_LOOKAHEAD_FRAMES, context_frames: int = DEFAULT_CONTEXT_FRAMES,
                 step_frames: int = DEFAULT_STEP_FRAMES):
        self.decode_window = decode_window
        self.hop, self.codebook_size = hop_length, codebook_size
        self.lookahead = _count(lookahead_frames, "lookahead_frames", 0)
        self.context = _count(context_frames, "context_frames", 0)
        self.step = _count(step_frames, "step_frames", 1)
        self.codes = torch.zeros(0, dtype=torch.long)  # received codes from frame `codes_start` on
        self.codes_start = 0
        self.received = 0
        self.pieces_out = 0
        self.finished = False

    @property
    def latency_frames(self) -> int:
        """Frames of codes that arrive after a frame's code before its audio can come out (the worst frame of a
        piece: its first); add one window's compute."""
        return self.step - 1 + self.lookahead

    def window(self, piece: int, total: int | None = None) -> tuple[int, int]:
        """Frames [start, end) of the window that piece `piece` is decoded from, in a stream of `total` frames (None:
        longer than the window reaches)."""
        end = max(MIN_WINDOW_FRAMES, (piece + 1) * self.step + self.lookahead)
        if total is not None:
            end = min(total, end)
        return max(0, min(piece * self.step - self.context, end - MIN_WINDOW_FRAMES)), end

    @torch.inference_mode()
    def push(self, codes: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The audio (float32, the codec's rate, possibly empty) of every piece whose look-ahead these codes (1-D
        integer ids, any length) complete."""
        if self.finished:
            raise WavTokenizerError("this live decoder was flushed; make a new one for another stream")
        chunk = self._checked(codes)
        self.codes = torch.cat([self.codes, chunk])
        self.received += chunk.numel()
        return self._emit(total=None)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """The remaining audio, the end of the stream being known."""
        if self.finished:
            return torch.zeros(0)
        self.finished = True
        if self.received < MIN_WINDOW_FRAMES:
            raise WavTokenizerError(f"the stream ended after {self.received} frame(s); at least {MIN_WINDOW_FRAMES} "
                                    "are needed to decode")
        return self._emit(total=self.received)

    def _checked(self, codes) -> torch.Tensor:
        chunk = codes if isinstance(codes, torch.Tensor) else torch.as_tensor(np.asarray(codes))
        if chunk.dim() != 1 or chunk.dtype == torch.bool or chunk.is_floating_point() or chunk.is_complex():
            raise WavTokenizerError(f"push takes 1-D integer codes (one channel), got {chunk.dtype} of shape "
                                    f"{tuple(chunk.shape)}")
        if chunk.numel():
            low, high = int(chunk.min()), int(chunk.max())
            if low < 0 or high >= self.codebook_size:
                raise WavTokenizerError(f"push: ids range over [{low}, {high}], outside [0, {self.codebook_size}) of "
                                        "this codebook")
        return chunk.to("cpu", torch.long)

    def _emit(self, total: int | None) -> torch.Tensor:
        audio = []
        while self.pieces_out * self.step < (self.received if total is None else total):
            piece = self.pieces_out
            start, end = self.window(piece, total)
            if end > self.received:  # its look-ahead has not arrived yet
                break
            window_audio = self.decode_window(self.codes[start - self.codes_start: end - self.codes_start])
            first, last = piece * self.step, min(self.received, (piece + 1) * self.step)
            audio.append(window_audio[(first - start) * self.hop: (last - start) * self.hop].float().cpu())
            self.pieces_out += 1
        # the next windows start at (next piece's first frame) - context, or one frame before it: drop what precedes
        keep_from = max(self.codes_start, self.pieces_out * self.step - max(self.context, MIN_WINDOW_FRAMES - 1))
        self.codes, self.codes_start = self.codes[keep_from - self.codes_start:], keep_from
        return torch.cat(audio) if audio else torch.zeros(0)
