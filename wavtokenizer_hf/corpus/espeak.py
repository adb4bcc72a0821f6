"""eSpeak NG through ctypes (library and data from the `espeakng-loader` wheel): audio plus exact word and phone
start times from the synthesiser's own events.

libespeak-ng keeps internal state between utterances and misbehaves when initialised twice in one process, so
`synthesize` is meant to run in a fresh process per utterance (see `builder.py`): that keeps output reproducible.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

import numpy as np

from .. import extras

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_PHONEME = 0, 1, 7
PARAM_RATE, PARAM_PITCH, PARAM_RANGE = 1, 3, 4
CHARS_UTF8 = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class Synthesis:
    """Raw synthesiser output: int16 audio, its rate, and (kind, seconds, text byte offset, byte length, phone)."""

    audio: np.ndarray
    sampling_rate: int
    events: list[tuple[int, float, int, int, str]]


def available() -> bool:
    return extras.available("espeakng_loader")


def version() -> str:
    espeakng_loader = extras.require("espeakng_loader", "the espeak-ng corpus")

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Info.restype = ctypes.c_char_p
    return lib.espeak_Info(None).decode()


def synthesize(text: str, voice: str, rate: int, pitch: int, pitch_range: int = 50, seed: int = 0,
               library: str | None = None, data_path: str | None = None) -> Synthesis:
    """Speak `text` with an espeak-ng voice such as 'en-us+m3'; call once per process.

    Voices with breath noise draw random numbers; `seed` fixes them (otherwise espeak seeds from the clock).
    `library`/`data_path` default to the `espeakng-loader` wheel's; `mbrola.py` passes the system's, whose data has
    the `mb-*` voices (the output rate is then the MBROLA database's)."""
    if library is None or data_path is None:
        espeakng_loader = extras.require("espeakng_loader", "the espeak-ng corpus")
        library, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()

    lib = ctypes.CDLL(library)
    if lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, ctypes.c_char_p(data_path.encode()),
                             INITIALIZE_PHONEME_EVENTS) <= 0:
        raise RuntimeError("espeak-ng failed to initialise")
    chunks: list[np.ndarray] = []
    events: list[tuple[int, float, int, int, str]] = []

    @_CALLBACK
    def on_audio(samples, count, event_list):
        if samples and count > 0:
            chunks.append(np.ctypeslib.as_array(samples, (count,)).copy())
        i = 0
        while event_list[i].type != EVENT_LIST_TERMINATED:
            event = event_list[i]
            if event.type in (EVENT_WORD, EVENT_PHONEME):
                phone = event.id.string.decode("utf-8", "replace") if event.type == EVENT_PHONEME else ""
                events.append((event.type, event.audio_position / 1000.0, event.text_position, event.length, phone))
            i += 1
        return 0

    if hasattr(lib, "espeak_ng_SetRandSeed"):  # absent from Debian's 1.51, whose MBROLA voices draw no noise
        lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
    ctypes.CDLL(None).srand(ctypes.c_uint(seed))
    lib.espeak_SetSynthCallback(on_audio)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"espeak-ng has no voice '{voice}'")
    sampling_rate = lib.espeak_ng_GetSampleRate()  # known once the voice is set: an MBROLA voice has its own
    lib.espeak_SetParameter(PARAM_RATE, int(rate), 0)
    lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)
    lib.espeak_SetParameter(PARAM_RANGE, int(pitch_range), 0)
    encoded = text.encode()
    status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, CHARS_UTF8, None, None)
    if status != 0:
        raise RuntimeError(f"espeak-ng synthesis failed with status {status}")
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return Synthesis(audio=audio, sampling_rate=sampling_rate, events=events)


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")  # letters of any script


def _split_span(span: list[str], spoken: list[dict]) -> list[dict]:
    """Share a word event's phones among the words it covers, in proportion to their letters (at least one phone
    each); exact when the event covers one word, an estimate for joined function words."""
    if len(span) > len(spoken):
        return [{"word": " ".join(span), "start": spoken[0]["start"], "end": spoken[-1]["end"]}]
    letters = np.cumsum([len(w) for w in span]) / sum(len(w) for w in span)
    out, first = [], 0
    for k, word in enumerate(span):
        last = len(spoken) - 1 if k == len(span) - 1 else min(
            max(first, int(round(letters[k] * len(spoken))) - 1), len(spoken) - (len(span) - k))
        out.append({"word": word, "start": spoken[first]["start"], "end": spoken[last]["end"]})
        first = last + 1
    return out


def timings(synthesis: Synthesis, text: str) -> tuple[list[dict], list[dict]]:
    """Word and phone intervals (seconds). A phone ends where the next begins; pauses become 'sil'. A word spans
    the non-pause phones that start between its word event and the next one (events come slightly early, so the
    word's start is its first phone's start; words never overlap)."""
    duration = len(synthesis.audio) / synthesis.sampling_rate
    encoded = text.encode()
    phone_events = [e for e in synthesis.events if e[0] == EVENT_PHONEME]
    phones: list[dict] = []
    for i, (_, start, _, _, name) in enumerate(phone_events):
        end = phone_events[i + 1][1] if i + 1 < len(phone_events) else duration
        name = name.strip().lstrip("',")  # stress marks are not part of the phone's identity
        label = "sil" if name.startswith("_") or not name else name
        start, end = min(start, duration), min(end, duration)
        if end <= start:
            continue
        if phones and label == "sil" and phones[-1]["phone"] == "sil":
            phones[-1]["end"] = round(end, 4)
        else:
            phones.append({"phone": label, "start": round(start, 4), "end": round(end, 4)})

    word_events = [e for e in synthesis.events if e[0] == EVENT_WORD]
    words: list[dict] = []
    read = 0  # bytes of the text already given to words
    for i, (_, start, position, length, _) in enumerate(word_events):
        limit = word_events[i + 1][1] if i + 1 < len(word_events) else duration
        spoken = [p for p in phones if p["phone"] != "sil" and start - 1e-6 <= p["start"] < limit]
        # one event may cover several words (espeak joins e.g. "has been"): its text runs to the next event; an event
        # may also start inside the previous event's word ("too", "--it"): only text not read yet counts
        text_end = max(word_events[i + 1][2] - 1 if i + 1 < len(word_events) else len(encoded), position - 1 + length)
        begin = max(position - 1, read)
        span = _WORD.findall(encoded[begin:text_end].decode(errors="ignore")) if text_end > begin else []
        read = max(read, text_end)
        if not spoken:
            continue
        if not span:  # the previous word goes on
            if words:
                words[-1]["end"] = max(words[-1]["end"], spoken[-1]["end"])
            continue
        words.extend(_split_span(span, spoken))
    return words, phones


# The espeak-ng "speakers" of the corpus: formant variants (not recorded people), each read with an accent drawn per
# utterance. `f4` with the Scottish accent is the test voice of a corpus without natural voices, and no other voice.
ACCENTS = ["en-us", "en", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-us-nyc"]
VARIANT_SEX = {"m1": "male", "m2": "male", "m3": "male", "m4": "male", "m5": "male", "m6": "male", "m7": "male",
               "f1": "female", "f2": "female", "f3": "female", "f5": "female", "klatt": "unknown",
               "klatt2": "unknown", "klatt3": "unknown", "Andy": "male", "Annie": "female", "aunty": "female",
               "belinda": "female", "Denis": "male", "edward": "unknown", "linda": "female", "Michael": "unknown",
               "steph": "female", "f4": "female"}
TEST_VARIANT, TEST_ACCENT = "f4", "en-gb-scotland"
LICENCE = "espeak-ng (espeakng-loader wheel; GPL-3+ program, output unrestricted)"
BASE_RATE = 170  # words per minute at speed 1


def installed_voices() -> list:
    from .voices import Voice

    if not available():
        return []
    return [Voice(backend="espeak", name=variant, speaker=f"espeak-{variant}", sex=sex, language="en",
                  licence=LICENCE, pitch_shift=True) for variant, sex in VARIANT_SEX.items()]


def speak(text: str, voice, speed: float = 1.0, pitch: float = 0.0, seed: int = 0):
    """`pitch` in semitones, about (50 + 6 per semitone); the accent and pitch range come from `seed`."""
    import random

    from ..errors import WavTokenizerError
    from .voices import Speech

    rng = random.Random(seed)
    accent = TEST_ACCENT if voice.name == TEST_VARIANT else rng.choice(ACCENTS)
    name = f"{accent}+{voice.name}"
    try:
        result = synthesize(text, name, int(round(BASE_RATE * speed)), int(round(min(max(50 + 6 * pitch, 0), 100))),
                            rng.randint(30, 80), seed)
    except (RuntimeError, ValueError) as error:
        raise WavTokenizerError(f"espeak voice {name}: {error}") from None
    words, phones = timings(result, text)
    return Speech(result.audio, result.sampling_rate, words, phones, detail=name)
