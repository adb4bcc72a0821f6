"""What every speech backend of the corpus offers: its installed voices, each naming the person behind it, and speech
with word and phone times where the backend reports them.

A backend module (`espeak`, `mbrola`, `flite`, `festival`, `rhvoice`, `piper`, `kde_recordings`) has
`installed_voices() -> list[Voice]` (empty where it is not installed; reserved speakers never listed) and
`speak(text, voice, speed=1.0, pitch=0.0, seed=0) -> Speech`, raising `WavTokenizerError` with the reason when a voice
cannot speak a text. The builder plans by speaker, so one person with voices in several backends (CMU ARCTIC `slt`
in Flite, Festival and RHVoice) counts once and lands in one split.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field

import numpy as np

from ..errors import WavTokenizerError

SEXES = ("female", "male", "unknown")
AGES = ("adult", "child")

# Held out of every split of every corpus this package builds: kept for checks no one tunes to. Keys are
# (backend, speaker); `*` matches every speaker of a backend.
RESERVED = {
    ("festival", "kal"), ("festival", "ked"), ("festival", "kdl"),
    ("flite", "kal"), ("flite", "ked"), ("flite", "kdl"),
    ("mbrola", "us1"), ("mbrola", "en1"),
    ("rhvoice", "clb"),
    ("ktuberling", "ca"), ("ktuberling", "de"), ("ktuberling", "el"), ("ktuberling", "en"), ("ktuberling", "ru"),
    ("klettres", "en"), ("klettres", "en_GB"), ("klettres", "fr"),
}


def is_reserved(backend: str, name: str) -> bool:
    """True for a held-out voice; `name` is the backend's voice id or the speaker (MBROLA's `mb-us1`, `mb-us1-en`
    and the speaker `mbrola-us1` all mean database `us1`)."""
    base = name.removeprefix("mbrola-").removeprefix("mb-").split("-")[0] if backend == "mbrola" else name
    return (backend, base) in RESERVED or (backend, name) in RESERVED


@dataclass(frozen=True)
class Voice:
    """One installed voice. `speaker` names the recorded person across backends; `sex` and `age` come from the
    voice's documentation ("unknown" where it says nothing)."""

    backend: str
    name: str  # the backend's own id: "mb-de1", "alan", "voice_czech_krb", "joe"
    speaker: str
    sex: str
    language: str  # as espeak-ng writes it: "en", "de", "pt-br"
    licence: str
    age: str = "adult"
    timed: bool = True  # the backend reports word and phone times
    pitch_shift: bool = False  # `speak(pitch=...)` changes the pitch
    rate_change: bool = True  # `speak(speed=...)` changes the speaking rate (else only 1.0 is accepted)
    free: bool = True  # False for voices whose licence restricts use (non-commercial): left out by --licence free

    def __post_init__(self) -> None:
        if self.sex not in SEXES or self.age not in AGES:
            raise ValueError(f"voice {self.key}: sex {self.sex!r} / age {self.age!r} not in {SEXES} / {AGES}")

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.name}"


@dataclass
class Speech:
    """Audio (int16 or float32 in [-1, 1]) at its own rate, with word and phone spans in seconds ([] when untimed)."""

    audio: np.ndarray
    sampling_rate: int
    words: list[dict] = field(default_factory=list)
    phones: list[dict] = field(default_factory=list)
    detail: str = ""  # what the backend actually used, where it chose (espeak: "en-us+m3")

    def float_audio(self) -> np.ndarray:
        if self.audio.dtype == np.int16:
            return self.audio.astype(np.float32) / 32768.0
        return self.audio.astype(np.float32)


MIN_PEAK = 64  # of 32,767: below it a synthesiser's output counts as silent


def read_pcm16_wav(path, who: str, text: str = "") -> tuple[np.ndarray, int]:
    """(int16 samples, rate) of a 16-bit mono WAV a synthesiser wrote; `who` names the voice in errors. The standard
    library's reader, not soundfile: backends run in forked pool workers, and a fork taken while the parent holds
    libsndfile's lock (it writes FLAC meanwhile) would wait on that lock forever."""
    try:
        with wave.open(str(path), "rb") as handle:
            if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
                raise WavTokenizerError(f"{who}: wrote {handle.getnchannels()} channel(s) of "
                                        f"{8 * handle.getsampwidth()}-bit audio; expected 16-bit mono")
            rate = handle.getframerate()
            audio = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").astype(np.int16)
    except (wave.Error, EOFError) as error:
        raise WavTokenizerError(f"{who}: unreadable WAV ({error})") from None
    if audio.size == 0 or int(np.abs(audio.astype(np.int32)).max()) < MIN_PEAK:
        raise WavTokenizerError(f"{who}: silent audio for {text[:40]!r}")
    return audio, rate
