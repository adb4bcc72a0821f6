"""Every voice this machine can speak with, grouped into speakers, and the split each speaker belongs to.

Test speakers are people no other split hears: the first available of `TEST_SPEAKERS` (both sexes where installed),
else espeak-ng's `f4` variant with a Scottish accent. Every other speaker is heard in training, and in validation
with other sentences. Reserved voices (`voices.RESERVED`) are never listed by any backend.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field

from ..errors import WavTokenizerError
from .voices import Voice, is_reserved

# backend name -> module under wavtokenizer_hf.corpus (klettres and ktuberling share one)
BACKEND_MODULES = {"espeak": "espeak", "flite": "flite", "festival": "festival", "mbrola": "mbrola",
                   "rhvoice": "rhvoice", "piper": "piper", "klettres": "kde_recordings",
                   "ktuberling": "kde_recordings"}
# Unseen speakers for the test split, in order of preference: CMU ARCTIC slt (F; Flite, Festival, RHVoice), Piper's
# joe (M), CMU ARCTIC bdl (M; RHVoice), and MBROLA's German fr4... see docs/corpus.md for why each.
TEST_SPEAKERS = ("slt", "joe", "bdl", "mbrola-de5")
FALLBACK_TEST_SPEAKER = "espeak-f4"
RECORDING_BACKENDS = {"klettres", "ktuberling"}  # real recordings: their hours are capped by what exists


@dataclass
class Speaker:
    name: str
    sex: str
    age: str
    voices: list[Voice] = field(default_factory=list)

    @property
    def languages(self) -> list[str]:
        return sorted({v.language for v in self.voices})

    @property
    def backends(self) -> list[str]:
        return sorted({v.backend for v in self.voices})


def backend_module(backend: str):
    return importlib.import_module(f"{__package__}.{BACKEND_MODULES[backend]}")


def installed_voices(natural: bool = True, licence: str = "any") -> list[Voice]:
    """Voices of every backend found (espeak-ng only when `natural` is False; no MBROLA/RHVoice when `licence` is
    "free": every voice whose licence restricts use). A backend that fails to list its voices is reported on stderr and left out."""
    if licence not in ("any", "free"):
        raise ValueError(f"licence must be 'any' or 'free', got {licence!r}")
    voices: list[Voice] = []
    for backend in dict.fromkeys(BACKEND_MODULES.values()):
        if backend != "espeak" and not natural:
            continue
        try:
            module = importlib.import_module(f"{__package__}.{backend}")
            found = module.installed_voices()
        except Exception as error:  # one broken backend must not stop the build
            print(f"corpus: backend {backend} skipped: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        for voice in found:
            if is_reserved(voice.backend, voice.speaker) or is_reserved(voice.backend, voice.name):
                raise AssertionError(f"backend {backend} listed the reserved voice {voice.key}")
            if licence == "free" and not voice.free:
                continue
            voices.append(voice)
    return sorted(voices, key=lambda v: (v.speaker, v.key))


def group_speakers(voices: list[Voice]) -> dict[str, Speaker]:
    speakers: dict[str, Speaker] = {}
    for voice in voices:
        speaker = speakers.setdefault(voice.speaker, Speaker(voice.speaker, voice.sex, voice.age))
        if speaker.sex == "unknown":
            speaker.sex = voice.sex
        speaker.age = "child" if voice.age == "child" else speaker.age
        speaker.voices.append(voice)
    return speakers


def test_speakers(speakers: dict[str, Speaker], wanted: tuple[str, ...] = ()) -> list[str]:
    """The held-out test speakers available here (each keeps only its English voices in the test split): those of
    `TEST_SPEAKERS` installed, or `wanted` instead (each must be installed with an English voice)."""
    def speaks_english(name: str) -> bool:
        return name in speakers and any(v.language == "en" for v in speakers[name].voices)

    if wanted:
        missing = [name for name in wanted if not speaks_english(name)]
        if missing:
            english = sorted(name for name in speakers if speaks_english(name))
            raise WavTokenizerError(f"test speakers with no English voice here: {', '.join(missing)} "
                                    f"(those with one: {', '.join(english) or 'none'})")
        return list(dict.fromkeys(wanted))
    return [name for name in TEST_SPEAKERS if speaks_english(name)] or [FALLBACK_TEST_SPEAKER]
