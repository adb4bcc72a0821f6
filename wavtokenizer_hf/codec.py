"""`Codec`: load a WavTokenizer once, then `encode(wav, sr)` -> `AudioCodes` and `decode(codes)` -> waveform.

It wraps the stock `WavTokenizerModel` (weights untouched) and adds what a user of files needs: resampling to the
model's rate, mixing down or keeping channels, input validation, and restoring the original length on decode.
Encoding runs on the package's exact fast path (`inference.FastWavTokenizer`: the stock model's codes, faster on CPU)
where it supports the model's configuration, and on the stock model otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, WavTokenizerModel

from .audio_io import as_channels_first, resample
from .codes_file import AudioCodes, check_codes
from .convert import codebook_fingerprint, load_hf_state
from .errors import WavTokenizerError
from .inference import DECODE_PRECISIONS, FastWavTokenizer, decode_autocast
from .live_decoder import DEFAULT_CONTEXT_FRAMES, DEFAULT_LOOKAHEAD_FRAMES, DEFAULT_STEP_FRAMES, LiveDecoder
from .long_audio import STREAMING_THRESHOLD_SECONDS, LiveEncoder, StreamingEncoder, decode_long

MIN_FRAMES = 2


def check_min_length(num_samples: int, hop_length: int, sampling_rate: int, what: str = "audio") -> None:
    """Refuse audio (at the model's rate) too short for `MIN_FRAMES` frames."""
    needed = (MIN_FRAMES - 1) * hop_length + 1
    if num_samples < needed:
        raise WavTokenizerError(
            f"{what}: {num_samples} samples at {sampling_rate} Hz is too short; at least {needed} samples "
            f"({1000 * needed / sampling_rate:.1f} ms, {MIN_FRAMES} frames of {hop_length}) are needed"
        )


class Codec:
    """A loaded WavTokenizer codec."""

    def __init__(self, model: WavTokenizerModel, name: str = "unknown", device: str | torch.device | None = None):
        if not isinstance(model, WavTokenizerModel):
            raise WavTokenizerError(f"expected a WavTokenizerModel, got {type(model).__name__}")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.name = name
        self.fingerprint = codebook_fingerprint(model.encoder_model.quantizer.codebook.embed)
        try:
            self.fast: FastWavTokenizer | None = FastWavTokenizer(self.model)
        except ValueError:  # causal or otherwise padded encoders: the stock model
            self.fast = None

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> "Codec":
        """Load a Hugging Face WavTokenizer directory (converted or trained by this package, or any stock one)."""
        path = Path(path)
        if not path.is_dir():
            raise WavTokenizerError(
                f"model directory not found: {path} (convert one with `wavtokenizer convert`, or pass --model)"
            )
        load_hf_state(path)  # clear errors for a missing, mismatched or corrupt directory
        model = AutoModel.from_pretrained(path)
        return cls(model, name=path.resolve().name, device=device or "cpu")

    @property
    def config(self):
        return self.model.config

    @property
    def sampling_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def frame_rate(self) -> float:
        return self.sampling_rate / self.hop_length

    @property
    def min_num_samples(self) -> int:
        """Shortest input (at the model's rate) that yields `MIN_FRAMES` frames."""
        return (MIN_FRAMES - 1) * self.hop_length + 1

    def prepare(self, waveform: torch.Tensor | np.ndarray, sampling_rate: int, keep_channels: bool = False,
                what: str = "audio") -> torch.Tensor:
        """Validate, mix down (unless `keep_channels`) and resample to the model's rate: (channels, samples)."""
        waveform = as_channels_first(waveform, what)
        if not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
            raise WavTokenizerError(f"{what}: sampling_rate must be a positive integer, got {sampling_rate!r}")
        if not keep_channels and waveform.shape[0] > 1:
            waveform = waveform.mean(dim=0, keepdim=True)
        waveform = resample(waveform, int(sampling_rate), self.sampling_rate)
        check_min_length(waveform.shape[-1], self.hop_length, self.sampling_rate, what)
        return waveform

    @torch.inference_mode()
    def encode(self, waveform: torch.Tensor | np.ndarray, sampling_rate: int, keep_channels: bool = False,
               what: str = "audio") -> AudioCodes:
        """Encode `(samples,)` or `(channels, samples)` float audio at any rate; channels are mixed down by default."""
        source_num_samples = as_channels_first(waveform, what).shape[-1]
        prepared = self.prepare(waveform, sampling_rate, keep_channels, what)
        if self.fast is not None and prepared.shape[-1] > STREAMING_THRESHOLD_SECONDS * self.sampling_rate:
            # long audio: chunk by chunk with the LSTM state carried, in bounded memory, the same codes
            streaming = StreamingEncoder(self.fast)
            codes = torch.stack([streaming.encode(channel) for channel in prepared])
        else:  # channels of one file have equal length, so they form an unpadded batch
            prepared = prepared.to(self.device)
            codes = (self.fast.encode(prepared)[0] if self.fast is not None
                     else self.model.encode(prepared.unsqueeze(1)).audio_codes[:, 0])
        return AudioCodes(
            audio_codes=codes.cpu(),
            codebook_size=self.codebook_size,
            sampling_rate=self.sampling_rate,
            hop_length=self.hop_length,
            num_samples=prepared.shape[-1],
            source_sampling_rate=int(sampling_rate),
            source_num_samples=int(source_num_samples),
            model_name=self.name,
            model_fingerprint=self.fingerprint,
        )

    def stream_encoder(self, sampling_rate: int) -> LiveEncoder:
        """A live encoder: `push(samples)` -> the codes that became final, `flush()` -> the rest; together the codes
        `encode` gives the whole signal. Audio at the model's rate (resample upstream: a streaming resampler would not
        give the offline resampler's samples, so the codes would not be exact)."""
        if sampling_rate != self.sampling_rate:
            raise WavTokenizerError(f"the live encoder takes audio at the model's rate ({self.sampling_rate} Hz), got "
                                    f"{sampling_rate} Hz; resample upstream (e.g. with soxr's ResampleStream)")
        if self.fast is None:
            raise WavTokenizerError("the live encoder needs the fast path; this model has none")
        return LiveEncoder(self.fast)

    def stream_decoder(self, lookahead_frames: int = DEFAULT_LOOKAHEAD_FRAMES,
                       context_frames: int = DEFAULT_CONTEXT_FRAMES,
                       step_frames: int = DEFAULT_STEP_FRAMES) -> LiveDecoder:
        """A live decoder: `push(codes)` -> new audio at the model's rate, `flush()` -> the rest; together as long as
        `decode`'s audio of all the codes, and close to it (not equal: the decoder's attention and normalisation see
        the whole sequence offline, a window here). Each piece of `step_frames` frames is decoded from a window with
        `context_frames` frames before it and `lookahead_frames` after it; a frame's audio comes out at most
        (step_frames - 1 + lookahead_frames) frames after its code, plus one window's compute. Distance to `decode`
        and speed for each look-ahead: BENCHMARKS.md ("Live decoding")."""
        if self.fast is not None:
            window = lambda codes: self.fast.decode(codes[None])[0].cpu()  # noqa: E731
        else:
            window = lambda codes: self.model.decode(  # noqa: E731
                codes[None, None].to(self.device)).audio_values[0, 0].float().cpu()
        return LiveDecoder(window, self.hop_length, self.codebook_size, lookahead_frames=lookahead_frames,
                           context_frames=context_frames, step_frames=step_frames)

    def check_compatible(self, codes: AudioCodes, allow_other_model: bool = False) -> None:
        """Refuse codes written by a model whose codebook or framing differs from this one."""
        mismatches = [
            f"{name} {theirs} != {ours}"
            for name, theirs, ours in (
                ("codebook_size", codes.codebook_size, self.codebook_size),
                ("hop_length", codes.hop_length, self.hop_length),
                ("sampling_rate", codes.sampling_rate, self.sampling_rate),
            )
            if theirs != ours
        ]
        if mismatches:
            raise WavTokenizerError(
                f"codes come from an incompatible model ('{codes.model_name}'): " + ", ".join(mismatches)
            )
        if codes.model_fingerprint and codes.model_fingerprint != self.fingerprint and not allow_other_model:
            raise WavTokenizerError(
                f"codes were made by model '{codes.model_name}' (codebook {codes.model_fingerprint}), not by this "
                f"model '{self.name}' (codebook {self.fingerprint}); decode with that model, or pass "
                "--allow-other-model (allow_other_model=True) if the codebooks are known to match"
            )

    @torch.inference_mode()
    def decode(self, codes: AudioCodes | torch.Tensor, allow_other_model: bool = False,
               precision: str = "fp32") -> torch.Tensor:
        """Decode to `(channels, samples)` at the model's rate, trimmed to the original length when known.
        `precision="bf16"` runs the decoder's matrix products in bf16 (faster on CPUs with bf16 support, not exact;
        measured in BENCHMARKS.md); the default "fp32" is the stock model's decode."""
        if precision not in DECODE_PRECISIONS:
            raise WavTokenizerError(f"decode precision {precision!r}; accepted: {', '.join(DECODE_PRECISIONS)}")
        if isinstance(codes, AudioCodes):
            self.check_compatible(codes, allow_other_model)
            ids, length = codes.audio_codes, codes.num_samples
        else:
            ids, length = codes, None
        ids = check_codes(ids, self.codebook_size)
        if ids.shape[-1] < MIN_FRAMES:
            raise WavTokenizerError(f"codes: {ids.shape[-1]} frame(s); at least {MIN_FRAMES} are needed to decode")
        if self.fast is not None and ids.shape[-1] > STREAMING_THRESHOLD_SECONDS * self.frame_rate:
            # long sequences: global parts over the whole sequence (flash attention, never frames x frames),
            # local parts chunk by chunk; within 1e-4 of the stock decode, in memory linear in the length
            audio = torch.stack([decode_long(self.fast, channel, precision=precision) for channel in ids])
        else:
            with decode_autocast(self.device, precision):
                audio = self.model.decode(ids.unsqueeze(1).to(self.device)).audio_values[:, 0].float().cpu()
        return audio[:, :length] if length is not None else audio

    def decode_to_source_rate(self, codes: AudioCodes, allow_other_model: bool = False,
                              precision: str = "fp32") -> torch.Tensor:
        """Decode and resample back to the rate and length of the file that was encoded."""
        audio = resample(self.decode(codes, allow_other_model, precision), self.sampling_rate,
                         codes.source_sampling_rate)
        audio = audio[:, : codes.source_num_samples]
        missing = codes.source_num_samples - audio.shape[-1]
        return torch.nn.functional.pad(audio, (0, missing)) if missing > 0 else audio
