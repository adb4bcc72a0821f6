"""Long audio in fixed windows with context on each side: bounded memory, approximate.

The exact long-audio paths are in `long_audio.py` (streaming encode with the LSTM state carried, whole-sequence decode
in linear memory); these windowed functions are kept for comparison and measured in
`benchmarks/bench_long_audio.py` / `benchmarks/bench_long_cli.py`.
"""

from __future__ import annotations

import torch

from .fast_wavtokenizer import FastWavTokenizer


def _windows(total: int, window: int, context: int, minimum: int = 1) -> list[tuple[int, int, int, int]]:
    """(start, end, offset, count) per window of `window` frames with `context` frames each side: frames
    [start, end) are processed and [start + offset, start + offset + count) are kept."""
    spans = []
    for first in range(0, total, window):
        start, end = max(0, first - context), min(total, first + window + context)
        start = min(start, max(0, end - minimum))
        spans.append((start, end, first - start, min(window, total - first)))
    return spans


def encode_windowed(fast: FastWavTokenizer, audio: torch.Tensor, window_seconds: float = 30.0,
                    context_seconds: float = 2.0, batch_size: int = 4) -> torch.Tensor:
    """Codes of a long 1-D waveform, encoded in windows of `window_seconds` with `context_seconds` of audio on
    each side (the context's frames are dropped); memory is bounded by the window, not the file.

    Window starts are multiples of the hop, so window frames align with whole-file frames; the context lets the
    convolutions see the true neighbourhood and the forward LSTM warm up. Agreement with whole-file codes is
    measured in `benchmarks/bench_long_audio.py`."""
    hop, rate = fast.hop_length, fast.config.sampling_rate
    total_frames = -(-audio.numel() // hop)
    window = max(1, int(window_seconds * rate) // hop)
    context = max(0, int(context_seconds * rate) // hop)
    if total_frames <= window + 2 * context:
        return fast.encode_list([audio])[0]
    spans = _windows(total_frames, window, context)
    pieces = [audio[start * hop: end * hop] for start, end, _, _ in spans]
    spans = [(offset, count) for _, _, offset, count in spans]
    codes = []
    for i in range(0, len(pieces), batch_size):
        for piece_codes, (offset, count) in zip(fast.encode_list(pieces[i:i + batch_size]), spans[i:i + batch_size]):
            codes.append(piece_codes[offset: offset + count])
    return torch.cat(codes)


def decode_windowed(fast: FastWavTokenizer, codes: torch.Tensor, window_seconds: float = 30.0,
                    context_seconds: float = 2.0, batch_size: int = 4) -> torch.Tensor:
    """Audio of a long code sequence, decoded in windows with context frames on each side (dropped). The decoder's
    attention is global, so windows differ slightly from a whole-sequence decode; the mel distance between the two
    is measured in `benchmarks/bench_long_audio.py`."""
    hop, rate = fast.hop_length, fast.config.sampling_rate
    window = max(2, int(window_seconds * rate) // hop)
    context = max(0, int(context_seconds * rate) // hop)
    total = codes.numel()
    if total <= window + 2 * context:
        return fast.decode_list([codes])[0]
    spans = _windows(total, window, context, minimum=2)  # the decoder needs at least 2 frames
    pieces = [codes[start:end] for start, end, _, _ in spans]
    spans = [(offset * hop, count * hop) for _, _, offset, count in spans]
    audio = []
    for i in range(0, len(pieces), batch_size):
        for piece_audio, (offset, count) in zip(fast.decode_list(pieces[i:i + batch_size]), spans[i:i + batch_size]):
            audio.append(piece_audio[offset: offset + count])
    return torch.cat(audio)
