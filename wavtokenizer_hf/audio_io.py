"""Read any audio file soundfile can read, validate it, resample and mix down; write audio atomically."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from .atomic import atomic_path, is_temporary
from .errors import WavTokenizerError

AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".rf64", ".wv"}
)


def is_audio_path(path: Path) -> bool:
    """An audio file by its suffix, and not a temporary file a killed run left (`.a.wav.x1y2.tmp.wav`)."""
    return path.suffix.lower() in AUDIO_SUFFIXES and not is_temporary(path)


def read_audio(path: str | Path) -> tuple[torch.Tensor, int]:
    """Return `(waveform (channels, samples) float32, sampling_rate)` of a file, or raise a clear error."""
    path = Path(path)
    if not path.exists():
        raise WavTokenizerError(f"audio file not found: {path}")
    if path.is_dir():
        raise WavTokenizerError(f"{path} is a directory, expected an audio file")
    try:
        data, sampling_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        formats = ", ".join(sorted(sf.available_formats()))
        raise WavTokenizerError(
            f"{path}: not a readable audio file ({str(err).strip() or err.__class__.__name__}); "
            f"soundfile reads: {formats}"
        ) from None
    waveform = torch.from_numpy(np.ascontiguousarray(data.T))
    validate_waveform(waveform, str(path))
    return waveform, int(sampling_rate)


PEAK_LIMIT = 16.0  # 24 dB over full scale: float files and resamplers overshoot a little, integer PCM 1000x


def validate_waveform(waveform: torch.Tensor, what: str = "audio") -> None:
    """Reject empty audio, NaN/Inf samples, and a peak far outside [-1, 1] (integer PCM passed as floats: one
    code for the whole clip, or all zeros, never an error otherwise)."""
    if waveform.numel() == 0 or waveform.shape[-1] == 0:
        raise WavTokenizerError(f"{what}: the audio is empty (0 samples)")
    if not torch.isfinite(waveform).all():
        bad = int((~torch.isfinite(waveform)).sum())
        raise WavTokenizerError(f"{what}: {bad} sample(s) are NaN or Inf; only finite values are accepted")
    peak = float(waveform.abs().max())
    if peak > PEAK_LIMIT:
        raise WavTokenizerError(f"{what}: peak {peak:.4g} is far outside [-1, 1]; float audio is expected in [-1, 1] "
                                "(integer PCM read as floats? divide it by its full scale, 32768 for 16-bit)")


def as_channels_first(waveform: torch.Tensor | np.ndarray, what: str = "audio") -> torch.Tensor:
    """Accept `(samples,)` or `(channels, samples)` float audio and return a float32 `(channels, samples)` tensor."""
    if isinstance(waveform, np.ndarray):
        waveform = torch.from_numpy(np.ascontiguousarray(waveform))
    if not isinstance(waveform, torch.Tensor):
        raise WavTokenizerError(f"{what}: expected a torch.Tensor or numpy array, got {type(waveform).__name__}")
    if not waveform.is_floating_point():
        raise WavTokenizerError(
            f"{what}: dtype {waveform.dtype} is not accepted; pass float audio in [-1, 1] "
            "(convert integer PCM by dividing by its full scale)"
        )
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2:
        raise WavTokenizerError(
            f"{what}: shape {tuple(waveform.shape)} is not accepted; pass (samples,) or (channels, samples)"
        )
    waveform = waveform.to(torch.float32)
    validate_waveform(waveform, what)
    return waveform


SINC_KERNEL_LIMIT = 1 << 22  # elements (16 MB): the common rate pairs need at most a few thousand


def sinc_kernel_elements(orig_rate: int, new_rate: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> int:
    """Size of torchaudio's polyphase sinc kernel for a rate pair: (new / gcd) x (orig / gcd + 2 x width). It grows
    with the reduced ratio: 44,100 -> 24,000 Hz needs 80 x 171 elements, 12,001 -> 24,000 Hz 24,000 x 12,015
    (1.2 GB, 5.7 GB at its peak for one second of audio)."""
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    width = math.ceil(lowpass_filter_width * orig / (min(orig, new) * rolloff))
    return new * (orig + 2 * width)


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling; a no-op at equal rates. torchaudio's sinc interpolation where its kernel is small
    (every common rate pair, so codes of such audio stay what they were), soxr (very high quality, memory
    independent of the ratio) for rate pairs whose reduced ratio would need a kernel of gigabytes (12,001 Hz)."""
    if orig_rate <= 0:
        raise WavTokenizerError(f"sampling rate must be positive, got {orig_rate}")
    if orig_rate == new_rate:
        return waveform
    if sinc_kernel_elements(orig_rate, new_rate) <= SINC_KERNEL_LIMIT:
        # torchaudio's kernel in fixed-size groups of steps: the samples a stream gets (streaming_resample.py)
        from .streaming_resample import StreamingResampler

        rows = []
        for row in waveform.detach().reshape(-1, waveform.shape[-1]).to("cpu", torch.float32):
            stream = StreamingResampler(orig_rate, new_rate)
            rows.append(torch.cat([stream.push(row), stream.flush()]))
        return torch.stack(rows).to(waveform.device, waveform.dtype).reshape(*waveform.shape[:-1], -1)
    import soxr

    flat = waveform.detach().reshape(-1, waveform.shape[-1]).to("cpu", torch.float64).numpy()
    out = np.stack([soxr.resample(row, orig_rate, new_rate, quality="VHQ") for row in flat])
    return torch.from_numpy(out).to(waveform.device, waveform.dtype).reshape(*waveform.shape[:-1], -1)


def write_audio(path: str | Path, waveform: torch.Tensor, sampling_rate: int, overwrite: bool = False) -> Path:
    """Write `(channels, samples)` or `(samples,)` audio; format from the suffix (wav, flac, ogg, ...)."""
    path = Path(path)
    data = waveform.detach().cpu().to(torch.float32)
    if data.dim() == 1:
        data = data.unsqueeze(0)
    subtype = "FLOAT" if path.suffix.lower() == ".wav" else None
    kind = path.suffix.lstrip(".").upper()
    if kind not in sf.available_formats():
        raise WavTokenizerError(
            f"{path}: cannot write '{path.suffix}' files; use one of " + ", ".join(f".{f.lower()}" for f in ("wav", "flac", "ogg"))
        )
    with atomic_path(path, overwrite=overwrite) as tmp:
        sf.write(tmp, data.T.numpy(), sampling_rate, subtype=subtype, format=kind)
    return path
