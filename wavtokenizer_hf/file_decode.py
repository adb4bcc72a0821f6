"""Decode a codes file to audio written as it comes: the live decoder (bounded look-ahead, approximate) window by
window, optionally resampled back to the source rate block by block, so memory holds one window whatever the length.

The exact decode (`Codec.decode`) needs the whole sequence at once (the decoder's attention is global): its memory
grows with the length. This path trades exactness for flat memory; how far it is from the exact decode for each
look-ahead is in BENCHMARKS.md ("Live decoding").
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch

from .atomic import atomic_path
from .codes_file import AudioCodes, check_codes
from .errors import WavTokenizerError
from .streaming_resample import StreamingResampler

PUSH_FRAMES = 750  # codes handed to the live decoders at a time
# A file is not live: longer pieces with more context than a live stream's defaults cost ~1.7x one decode instead of
# ~12x (5-frame pieces in 60-frame windows) and land closer to the exact decode.
FILE_STEP_FRAMES, FILE_CONTEXT_FRAMES, FILE_LOOKAHEAD_FRAMES = 250, 150, 75


def decode_streaming(codec, codes: AudioCodes, path: str | Path, source_rate: bool = False, overwrite: bool = False,
                     allow_other_model: bool = False, lookahead_frames: int = FILE_LOOKAHEAD_FRAMES,
                     context_frames: int = FILE_CONTEXT_FRAMES, step_frames: int = FILE_STEP_FRAMES) -> Path:
    """Write the audio of `codes` to `path` (format from the suffix) as the live decoder produces it."""
    codec.check_compatible(codes, allow_other_model)
    ids = check_codes(codes.audio_codes, codec.codebook_size)
    rate = codes.source_sampling_rate if source_rate else codec.sampling_rate
    length = codes.source_num_samples if source_rate else codes.num_samples
    kind = Path(path).suffix.lstrip(".").upper()
    if kind not in sf.available_formats():
        raise WavTokenizerError(f"{path}: cannot write '{Path(path).suffix}' files; use .wav, .flac or .ogg")
    decoders = [codec.stream_decoder(lookahead_frames=lookahead_frames, context_frames=context_frames,
                                     step_frames=step_frames)
                for _ in range(ids.shape[0])]
    resamplers = [StreamingResampler(codec.sampling_rate, rate) for _ in range(ids.shape[0])]
    written = 0
    with atomic_path(path, overwrite=overwrite) as tmp:
        with sf.SoundFile(tmp, "w", rate, ids.shape[0], format=kind,
                          subtype="FLOAT" if kind == "WAV" else None) as out:

            def write(pieces: list[torch.Tensor]) -> None:
                nonlocal written
                block = torch.stack(pieces, dim=1)[: max(0, length - written)] if length else torch.stack(pieces, 1)
                out.write(block.numpy())
                written += block.shape[0]

            for first in range(0, ids.shape[-1], PUSH_FRAMES):
                write([resampler.push(decoder.push(channel[first:first + PUSH_FRAMES]))
                       for decoder, resampler, channel in zip(decoders, resamplers, ids)])
            write([torch.cat([resampler.push(decoder.flush()), resampler.flush()])
                   for decoder, resampler in zip(decoders, resamplers)])
            if length and written < length:  # as `decode_to_source_rate` pads a short end with silence
                out.write(torch.zeros(length - written, ids.shape[0]).numpy())
    return Path(path)
