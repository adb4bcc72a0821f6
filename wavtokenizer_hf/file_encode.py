"""Encode a file or a raw PCM stream in bounded memory, with the codes `Codec.encode` gives the whole signal.

A long input is read in blocks, mixed down and resampled block by block (`streaming_resample.py`: the offline
resampler's samples, bit for bit) and pushed into the live encoder (`long_audio.LiveEncoder`: the offline codes), so
memory holds a block and the encoders' look-back whatever the file's length. A file up to the streaming threshold is
read whole, as `Codec.encode` would (the short path batches channels; its codes are the same).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import soundfile as sf
import torch

from .audio_io import PEAK_LIMIT, read_audio
from .codes_file import AudioCodes
from .errors import WavTokenizerError
from .long_audio import STREAMING_THRESHOLD_SECONDS
from .streaming_resample import StreamingResampler

BLOCK_SECONDS = 10.0
RAW_FORMATS = {"f32le": np.dtype("<f4"), "s16le": np.dtype("<i2"), "s32le": np.dtype("<i4")}


def _check_block(block: np.ndarray, what: str, offset: int) -> None:
    if not np.isfinite(block).all():
        raise WavTokenizerError(f"{what}: NaN or Inf samples after sample {offset}; only finite values are accepted")
    peak = float(np.abs(block).max()) if block.size else 0.0
    if peak > PEAK_LIMIT:
        raise WavTokenizerError(f"{what}: peak {peak:.4g} after sample {offset} is far outside [-1, 1]; float audio "
                                "is expected in [-1, 1]")


def encode_blocks(codec, blocks: Iterator[np.ndarray], sampling_rate: int, keep_channels: bool = False,
                  what: str = "audio") -> AudioCodes:
    """Codes of audio arriving as `(samples, channels)` float32 blocks at `sampling_rate`."""
    streams: list[tuple[StreamingResampler, object]] | None = None
    codes: list[list[torch.Tensor]] = []
    received = 0
    produced = 0
    for block in blocks:
        if block.ndim != 2:
            raise WavTokenizerError(f"{what}: blocks must be (samples, channels), got shape {block.shape}")
        _check_block(block, what, received)
        if streams is None:
            count = block.shape[1] if keep_channels else 1
            streams = [(StreamingResampler(sampling_rate, codec.sampling_rate), codec.stream_encoder(
                codec.sampling_rate)) for _ in range(count)]
            codes = [[] for _ in range(count)]
            channels = block.shape[1]
        if block.shape[1] != channels:
            raise WavTokenizerError(f"{what}: the channel count changed from {channels} to {block.shape[1]}")
        received += block.shape[0]
        data = torch.from_numpy(np.ascontiguousarray(block.T))
        if not keep_channels and data.shape[0] > 1:
            data = data.mean(dim=0, keepdim=True)  # as Codec.prepare mixes the whole signal
        for (resampler, encoder), row, out in zip(streams, data, codes):
            samples = resampler.push(row)
            produced += samples.numel() if out is codes[0] else 0
            out.append(encoder.push(samples))
    if streams is None or received == 0:
        raise WavTokenizerError(f"{what}: the audio is empty (0 samples)")
    for (resampler, encoder), out in zip(streams, codes):
        tail = resampler.flush()
        produced += tail.numel() if out is codes[0] else 0
        out.append(encoder.push(tail))
        out.append(encoder.flush())
    return AudioCodes(
        audio_codes=torch.stack([torch.cat(out) for out in codes]),
        codebook_size=codec.codebook_size,
        sampling_rate=codec.sampling_rate,
        hop_length=codec.hop_length,
        num_samples=produced,
        source_sampling_rate=int(sampling_rate),
        source_num_samples=int(received),
        model_name=codec.name,
        model_fingerprint=codec.fingerprint,
    )


def encode_file(codec, path: str | Path, keep_channels: bool = False,
                block_seconds: float = BLOCK_SECONDS) -> AudioCodes:
    """Codes of an audio file; files past the streaming threshold go block by block (bounded memory)."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        info = None  # read_audio gives the specific error
    if info is None or info.frames <= STREAMING_THRESHOLD_SECONDS * info.samplerate:
        waveform, rate = read_audio(path)
        return codec.encode(waveform, rate, keep_channels=keep_channels, what=str(path))
    block = max(1, int(block_seconds * info.samplerate))
    blocks = sf.blocks(str(path), blocksize=block, dtype="float32", always_2d=True)
    return encode_blocks(codec, blocks, info.samplerate, keep_channels, str(path))


def raw_blocks(stream: BinaryIO, dtype: str, channels: int, block_samples: int) -> Iterator[np.ndarray]:
    """(samples, channels) float32 blocks of interleaved raw PCM read from `stream` (a pipe) until it ends."""
    if dtype not in RAW_FORMATS:
        raise WavTokenizerError(f"raw format {dtype!r} is not one of {sorted(RAW_FORMATS)}")
    if channels <= 0:
        raise WavTokenizerError(f"raw input needs a positive channel count, got {channels}")
    kind = RAW_FORMATS[dtype]
    frame_bytes = kind.itemsize * channels
    pending = b""
    while True:
        chunk = stream.read(block_samples * frame_bytes)
        if not chunk:
            break
        pending += chunk
        whole = len(pending) // frame_bytes * frame_bytes
        if whole:
            data = np.frombuffer(pending[:whole], dtype=kind).reshape(-1, channels)
            pending = pending[whole:]
            if kind.kind == "i":
                yield (data.astype(np.float32) / float(2 ** (8 * kind.itemsize - 1)))
            else:
                yield data.astype(np.float32)
    if pending:
        print(f"raw input: {len(pending)} trailing byte(s) do not make a whole frame; ignored", file=sys.stderr)
