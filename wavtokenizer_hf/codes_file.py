"""`AudioCodes`: token ids plus everything needed to decode them faithfully, and its file format.

A codes file is a safetensors file (no pickle) holding `audio_codes` (channels, frames) as int16 (int32 for
codebooks above 32768 entries) and string metadata: format version, codebook size, frame rate, hop, sampling rate,
the original length, and the model's name and codebook fingerprint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import atomic_path
from .errors import WavTokenizerError

CODES_SUFFIX = ".codes.safetensors"
FORMAT_NAME = "wavtokenizer-hf/codes"
FORMAT_VERSION = 1


def check_codes(codes: torch.Tensor, codebook_size: int, what: str = "codes") -> torch.Tensor:
    """Validate integer codes of shape (frames,) or (channels, frames) in [0, codebook_size); return (C, F) int64."""
    if not isinstance(codes, torch.Tensor):
        raise WavTokenizerError(f"{what}: expected a torch.Tensor of integer ids, got {type(codes).__name__}")
    if codes.dtype == torch.bool or codes.is_floating_point() or codes.is_complex():
        raise WavTokenizerError(f"{what}: dtype {codes.dtype} is not accepted; codes must be an integer tensor")
    if codes.dim() == 1:
        codes = codes.unsqueeze(0)
    if codes.dim() != 2:
        raise WavTokenizerError(
            f"{what}: shape {tuple(codes.shape)} is not accepted; pass (frames,) or (channels, frames)"
        )
    if codes.shape[-1] == 0:
        raise WavTokenizerError(f"{what}: there are no frames to decode")
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= codebook_size:
        raise WavTokenizerError(
            f"{what}: ids range over [{low}, {high}], outside [0, {codebook_size}) of this codebook"
        )
    return codes.to(torch.int64)


@dataclass
class AudioCodes:
    """Codes of one audio file: `audio_codes` is (channels, frames); lengths are in samples at the model's rate."""

    audio_codes: torch.Tensor
    codebook_size: int
    sampling_rate: int
    hop_length: int
    num_samples: int
    source_sampling_rate: int
    source_num_samples: int
    model_name: str = "unknown"
    model_fingerprint: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def frame_rate(self) -> float:
        return self.sampling_rate / self.hop_length

    @property
    def num_channels(self) -> int:
        return self.audio_codes.shape[0]

    @property
    def num_frames(self) -> int:
        return self.audio_codes.shape[-1]

    def metadata(self) -> dict[str, str]:
        fields = {k: v for k, v in asdict(self).items() if k != "audio_codes"}
        fields.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, frame_rate=self.frame_rate)
        return {key: json.dumps(value) for key, value in fields.items()}

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        dtype = torch.int16 if self.codebook_size <= 2**15 else torch.int32
        codes = check_codes(self.audio_codes, self.codebook_size).to(dtype).contiguous()
        with atomic_path(path, overwrite=overwrite) as tmp:
            save_file({"audio_codes": codes}, tmp, metadata=self.metadata())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "AudioCodes":
        path = Path(path)
        if not path.is_file():
            raise WavTokenizerError(f"codes file not found: {path}")
        try:
            with safe_open(path, framework="pt") as handle:
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
                meta = {key: json.loads(value) for key, value in (handle.metadata() or {}).items()}
        except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as err:
            raise WavTokenizerError(f"{path}: not a readable codes file ({err})") from None
        if meta.get("format") != FORMAT_NAME or "audio_codes" not in tensors:
            raise WavTokenizerError(f"{path}: not a wavtokenizer-hf codes file (write one with `wavtokenizer encode`)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise WavTokenizerError(
                f"{path}: codes format version {meta.get('format_version')} is not supported (expected {FORMAT_VERSION})"
            )
        names = [f for f in cls.__dataclass_fields__ if f != "audio_codes"]
        missing = [name for name in names if name not in meta]
        if missing:
            raise WavTokenizerError(f"{path}: codes file lacks metadata {missing}")
        check_metadata(meta, tensors["audio_codes"].shape[-1], path)
        codes = check_codes(tensors["audio_codes"], meta["codebook_size"], str(path))
        return cls(audio_codes=codes, **{name: meta[name] for name in names})


MAX_RATE = 768_000  # no audio format goes higher


def _whole(meta: dict, key: str, low: int, high: int, path: Path) -> int:
    value = meta[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WavTokenizerError(f"{path}: metadata {key} is {value!r}; expected a whole number in [{low}, {high}]")
    return value


def check_metadata(meta: dict, frames: int, path: Path) -> None:
    """Types, ranges and agreement of a codes file's metadata: the decoded length must be one the frames can give
    (at most frames x hop samples), and the source length must match it at the source rate (within a sample of the
    rate ratio), so that no field can make a decode short, long or huge."""
    for key in ("model_name", "model_fingerprint"):
        if not isinstance(meta[key], str):
            raise WavTokenizerError(f"{path}: metadata {key} is {meta[key]!r}; expected text")
    if not isinstance(meta["extra"], dict):
        raise WavTokenizerError(f"{path}: metadata extra is {meta['extra']!r}; expected a JSON object")
    _whole(meta, "codebook_size", 1, 2**31 - 1, path)
    rate = _whole(meta, "sampling_rate", 1, MAX_RATE, path)
    hop = _whole(meta, "hop_length", 1, rate, path)
    samples = _whole(meta, "num_samples", 1, frames * hop, path)
    source_rate = _whole(meta, "source_sampling_rate", 1, MAX_RATE, path)
    expected = samples * source_rate / rate
    slack = source_rate / rate + 1
    source = _whole(meta, "source_num_samples", 1, int(expected + slack), path)
    if source < expected - slack:
        raise WavTokenizerError(f"{path}: metadata source_num_samples is {source}; {samples} samples at {rate} Hz "
                                f"are about {expected:.0f} at {source_rate} Hz")
