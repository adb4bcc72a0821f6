"""Real human recordings from Debian's KDE education data: `klettres-data` (letters and syllables read aloud,
`/usr/share/klettres/<lang>/sounds.xml`) and `ktuberling-data` (names of the objects of a stamp toy,
`/usr/share/ktuberling/sounds/<lang>.soundtheme`). Two backends in one module: `klettres` and `ktuberling`.

Optional: `available()` is False without the packages' data (`apt-get install klettres-data ktuberling-data`).
The reserved speakers (`voices.RESERVED`: KTuberling ca, de, el, en, ru; KLettres en, en_GB, fr) are never listed
and never read. A voice is one language folder of one package, one person, unless the documentation or the files say
otherwise; what this module found, and the choices it made, are in `_PEOPLE`, `_PARTS` and `_EXCLUDED`:

- sex (and `age="child"`) only where a credit names the person (KLettres handbook's credits, sounds.xml comments,
  the files' ARTIST tags) and the measured pitch of the clips agrees; "unknown" otherwise;
- KLettres German: the syllables (median F0 about 118 Hz, Helmut Kriege is credited) and the letters (about 220 Hz, an
  uncredited voice) are two speakers; KTuberling Danish: Martha Schou's Tux clips (ARTIST tag, about 250 Hz) are
  one, the other objects (about 135 Hz, uncredited) another, and the Christmas clips (no credit, about 280 Hz) are
  left out rather than guessed;
- Norwegian Nynorsk (`nn`) is left out of both: its sounds were made with the CereVoice text-to-speech service (the
  KLettres sounds.xml says so; the KTuberling files carry the same two credits), not recorded;
- KLettres Russian is left out too: "made at Google Code-in" (sounds.xml; tags dated 2010), it may well be the
  contributor of KTuberling's Russian sounds (dated Nov-Dec 2010, Google Code-in's weeks), a reserved speaker;
- KTuberling's `sr@ijekavian`, `sr@ijekavianlatin` and `sr@latin` are byte-identical copies of `sr`: one voice.

A speaker-embedding check (Resemblyzer, four utterances a voice) found no two listed voices as alike as a voice is to
itself (median 0.89 within a voice; the closest same-language pair, Low Saxon in both packages, 0.76), so every
voice is its own speaker; the German and Danish parts above score 0.52 and 0.56 against each other.

Texts: a KLettres clip says the letter or syllable its sounds.xml names (a transcript); a KTuberling clip says the
name of an object in its language, but the soundtheme names the object by an English id (`egypt_camel`), so its
texts are labels, not transcripts (`TRANSCRIBED`). Files in a language folder that the XML does not list are used
with their file name's stem as the text.

Recordings cannot say an arbitrary text: `utterance(voice, seed)` strings randomly chosen clips of one voice into
3-8 s of speech with short pauses between them, all from `seed`; `speak` returns its audio (or one clip, when the
text asked for is one of the clip texts). `speed` and `pitch` are ignored (these are recordings), no word or phone
times are given (`timed=False`).
"""

from __future__ import annotations

import functools
import random
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..audio_io import is_audio_path, resample
from ..errors import WavTokenizerError
from .voices import Speech, Voice, is_reserved

KLETTRES_DIR = Path("/usr/share/klettres")
KTUBERLING_DIR = Path("/usr/share/ktuberling/sounds")
BACKENDS = ("klettres", "ktuberling")
SAMPLING_RATE = 24000  # every clip is resampled to this rate (the corpus's own)
MIN_SECONDS, TARGET_SECONDS, MAX_SECONDS = 3.0, (3.0, 8.0), 8.5
PAUSE_SECONDS = (0.15, 0.4)
TRIM_DB = -40.0  # a clip's leading and trailing audio this far under its loudest 10 ms is cut (the files are padded)
TRIM_MARGIN = 0.05  # seconds kept around the speech
PEAK = 0.95  # an utterance whose peak would clip is scaled to this
TRANSCRIBED = {"klettres": True, "ktuberling": False}  # whether clip texts are what the clip says (see above)
LICENCE = {
    "klettres": "GPL-2+ (Debian klettres-data, copyright `Files: *`): KLettres sounds read by volunteers",
    "ktuberling": "GPL-2+ (Debian ktuberling-data, copyright `Files: *`): KTuberling sound themes recorded by "
                  "translators",
}

# (backend, voice name) -> (sex, age, who is credited and where)
_PEOPLE = {
    ("klettres", "ar"): ("male", "child", "Rafik, the contributor's nephew (sounds.xml)"),
    ("klettres", "cs"): ("female", "adult", "Eva Mikulčíková (KLettres handbook)"),
    ("klettres", "da"): ("male", "adult", "Erik Kjaer Pedersen (KLettres handbook)"),
    ("klettres", "de"): ("male", "adult", "Helmut Kriege (KLettres handbook; the syllables)"),
    ("klettres", "de-alpha"): ("unknown", "adult", "uncredited (the German letters; higher than the syllables)"),
    ("klettres", "es"): ("unknown", "adult", "Ana Belén Caballero and Juan Pedro Paredes (KLettres handbook; one "
                                             "voice is heard)"),
    ("klettres", "he"): ("male", "adult", "Assaf Gorgon (KLettres handbook)"),
    ("klettres", "it"): ("unknown", "adult", "Pietro Pasotti (KLettres handbook)"),
    ("klettres", "lt"): ("male", "adult", "Liudas Ališauskas (sounds.xml, ARTIST tags)"),
    ("klettres", "nb"): ("unknown", "adult", "Johnstad/Gabor, from GCompris (ARTIST tags)"),
    ("klettres", "nds"): ("male", "adult", "Manfred Wiese and Sönke Dibbern (KLettres handbook; one voice is heard)"),
    ("klettres", "nl"): ("unknown", "adult", "Geert Stams (KLettres handbook)"),
    ("klettres", "pt_BR"): ("unknown", "child", "Lindonjohnson Monte and Michelle Monte, 9 (KLettres handbook; a "
                                                "child's voice is heard)"),
    ("ktuberling", "da"): ("unknown", "adult", "uncredited (the objects other than Tux's and Christmas's)"),
    ("ktuberling", "da-schou"): ("female", "adult", "Martha Schou (ARTIST tags; the Tux clips)"),
    ("ktuberling", "lt"): ("male", "adult", "Donatas Glodenis (ARTIST tags)"),
    ("ktuberling", "wa"): ("male", "adult", "Djan Cayron (ARTIST tags)"),
}
# (backend, language folder) -> its voices as (name, pattern on the path within the folder); first match wins and
# a clip no pattern matches is not used
_PARTS = {
    ("klettres", "de"): (("de", r"^syllab/"), ("de-alpha", r"^alpha/")),
    ("ktuberling", "da"): (("da-schou", r"^(tux-.*|.*-tux\.\w+)$"), ("da", r"^(?!xmas_)")),
}
_EXCLUDED = {  # (backend, language folder) -> why its clips are not used
    ("klettres", "nn"): "made with the CereVoice text-to-speech service, not recorded (sounds.xml)",
    ("ktuberling", "nn"): "credited to the makers of KLettres' CereVoice nn sounds; treated as synthetic",
    ("klettres", "ru"): "Google Code-in 2010: possibly the same person as KTuberling's reserved Russian sounds",
}
_LANGUAGE = {"pt_BR": "pt-br", "en_GB": "en"}


def _root(backend: str) -> Path:
    return {"klettres": KLETTRES_DIR, "ktuberling": KTUBERLING_DIR}[backend]


def available() -> bool:
    return any(_languages(backend) for backend in BACKENDS)


def _listing(backend: str, lang: str) -> Path:
    return _root(backend) / lang / "sounds.xml" if backend == "klettres" else _root(backend) / f"{lang}.soundtheme"


def _languages(backend: str) -> list[str]:
    """Language folders with a listing, reserved, excluded and duplicate ones left out."""
    root = _root(backend)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        lang = folder.name
        if (not _listing(backend, lang).is_file() or is_reserved(backend, lang) or (backend, lang) in _EXCLUDED
                or ("@" in lang and (root / lang.split("@")[0]).is_dir())):  # sr@latin: a copy of sr
            continue
        found.append(lang)
    return found


def _language(lang: str) -> str:
    return _LANGUAGE.get(lang, lang.split("@")[0].lower().replace("_", "-"))


def _entries(listing: Path) -> list[tuple[str, str]]:
    """(name, file) of each <sound> in a sounds.xml or soundtheme, in document order."""
    text = listing.read_text(encoding="utf-8", errors="replace")
    try:
        sounds = ET.fromstring(text).iter("sound")
        return [(s.get("name", ""), s.get("file", "")) for s in sounds]
    except ET.ParseError:  # a hand-edited file: read its sound tags as text
        tags = re.findall(r"<sound\b[^>]*>", text)
        attrs = [dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', tag)) for tag in tags]
        return [(a.get("name", ""), a.get("file", "")) for a in attrs]


@functools.lru_cache(maxsize=None)
def _folder_clips(backend: str, lang: str) -> tuple[tuple[str, Path], ...]:
    """(text, file) of every clip in a language folder: the listed ones in the listing's order (a file listed twice
    keeps its first text), then the unlisted audio files by name with their stem as text."""
    if is_reserved(backend, lang):
        raise WavTokenizerError(f"{backend}:{lang} is a reserved speaker and is never read")
    root = _root(backend)
    folder = (root / lang).resolve()
    clips: dict[Path, str] = {}
    for name, file in _entries(_listing(backend, lang)):
        path = (root / file).resolve()
        if folder in path.parents and path.is_file() and path not in clips:  # never another language's files
            clips[path] = name.strip() or path.stem
    for path in sorted(p.resolve() for p in folder.rglob("*") if p.is_file() and is_audio_path(p)):
        clips.setdefault(path, path.stem)
    return tuple((text, path) for path, text in clips.items())


def _voice_parts() -> dict[tuple[str, str], tuple[str, str]]:
    """(backend, voice name) -> (language folder, pattern on the path within it) of every installed voice."""
    parts = {}
    for backend in BACKENDS:
        for lang in _languages(backend):
            for name, pattern in _PARTS.get((backend, lang), ((lang, ""),)):
                if not is_reserved(backend, name):
                    parts[(backend, name)] = (lang, pattern)
    return parts


def installed_voices() -> list[Voice]:
    """Every voice with at least one clip, sorted by backend and name; reserved speakers never listed."""
    voices = []
    for (backend, name), (lang, _) in sorted(_voice_parts().items()):
        if not clips_of(backend, name):
            continue
        sex, age, credit = _PEOPLE.get((backend, name), ("unknown", "adult", ""))
        licence = LICENCE[backend] + (f"; voice: {credit}" if credit else "")
        voices.append(Voice(backend=backend, name=name, speaker=f"{backend}-{name}", sex=sex, language=_language(lang),
                            licence=licence, age=age, timed=False, pitch_shift=False))
    return voices


def clips_of(backend: str, name: str) -> list[tuple[str, Path]]:
    if backend not in BACKENDS:
        raise WavTokenizerError(f"backend {backend!r} is not one of {BACKENDS}")
    if is_reserved(backend, name):
        raise WavTokenizerError(f"{backend}:{name} is a reserved speaker and is never read")
    part = _voice_parts().get((backend, name))
    if part is None:
        raise WavTokenizerError(f"{backend}:{name} is not an installed voice (see installed_voices())")
    lang, pattern = part
    folder = (_root(backend) / lang).resolve()
    table = _folder_clips(backend, lang)
    patterns = _PARTS.get((backend, lang))
    if patterns is None:
        return list(table)
    chosen = []
    for text, path in table:
        relative = path.relative_to(folder).as_posix()
        first = next((n for n, p in patterns if re.search(p, relative)), None)
        if first == name:
            chosen.append((text, path))
    return chosen


def clips(voice: Voice) -> list[tuple[str, Path]]:
    """(text, audio file) of every clip of a voice, in a fixed order; raises for a reserved or unknown voice."""
    return clips_of(voice.backend, voice.name)


def total_seconds(voice: Voice) -> float:
    """Seconds of audio in a voice's files (headers only, untrimmed); unreadable files count 0."""
    total = 0.0
    for _, path in clips(voice):
        try:
            total += sf.info(str(path)).duration
        except (sf.LibsndfileError, RuntimeError) as err:
            print(f"kde_recordings: cannot read {path}: {err}", file=sys.stderr)
    return total


def _mono(data: np.ndarray) -> np.ndarray:
    """Mix (samples, channels) down; a channel much weaker than the other (some files have one empty channel) is
    dropped rather than averaged in."""
    if data.shape[1] == 1:
        return data[:, 0]
    rms = np.sqrt(np.mean(np.square(data, dtype=np.float64), axis=0))
    if rms.max() > 0 and rms.min() < 0.5 * rms.max():
        return data[:, int(np.argmax(rms))]
    return data.mean(axis=1)


@functools.lru_cache(maxsize=256)
def _load(path: Path) -> tuple[np.ndarray, float] | None:
    """A clip as mono float32 at SAMPLING_RATE with its padding trimmed, and its noise floor (RMS); None (after
    one warning) when it cannot be read or holds no sound."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        print(f"kde_recordings: skipping unreadable clip {path}: {err}", file=sys.stderr)
        return None
    if data.size == 0 or not np.isfinite(data).all():
        print(f"kde_recordings: skipping empty or non-finite clip {path}", file=sys.stderr)
        return None
    audio = resample(torch.from_numpy(np.ascontiguousarray(_mono(data)))[None], rate, SAMPLING_RATE)[0].numpy()
    frame = SAMPLING_RATE // 100
    frames = len(audio) // frame
    if frames < 3:
        print(f"kde_recordings: skipping clip {path}: shorter than 30 ms", file=sys.stderr)
        return None
    rms = np.sqrt(np.mean(np.square(audio[:frames * frame].reshape(frames, frame), dtype=np.float64), axis=1))
    if rms.max() <= 1e-5:
        print(f"kde_recordings: skipping silent clip {path}", file=sys.stderr)
        return None
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (TRIM_DB / 20))
    margin = int(TRIM_MARGIN * SAMPLING_RATE)
    start, end = max(0, loud[0] * frame - margin), min(len(audio), (loud[-1] + 1) * frame + margin)
    return np.ascontiguousarray(audio[start:end], dtype=np.float32), float(np.percentile(rms, 10))


def _finish(audio: np.ndarray, backend: str, paths: list[Path]) -> Speech:
    """The audio, scaled down only where it would clip; `detail` names the clips used (paths under the package's
    sound folder)."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0.99:
        audio = audio * (PEAK / peak)
    root = _root(backend).resolve()
    detail = " ".join(p.relative_to(root).as_posix() if root in p.parents else p.name for p in paths)
    return Speech(audio=audio.astype(np.float32), sampling_rate=SAMPLING_RATE, words=[], phones=[], detail=detail)


def utterance(voice: Voice, seed: int = 0) -> tuple[str, Speech]:
    """About 3-8 s (at most MAX_SECONDS) of one voice: clips drawn at random (no clip twice in a row), joined by
    0.15-0.4 s pauses filled with noise at the quieter neighbour's own floor; the length aimed at, the clips and the
    pauses all follow from `seed`. Returns the clip texts joined by spaces, and the audio."""
    table = clips(voice)
    if not table:
        raise WavTokenizerError(f"{voice.key} has no clips")
    rng = random.Random(f"{voice.key}/{seed}")
    target = int(rng.uniform(*TARGET_SECONDS) * SAMPLING_RATE)
    limit, least = int(MAX_SECONDS * SAMPLING_RATE), int(MIN_SECONDS * SAMPLING_RATE)
    pieces: list[np.ndarray] = []
    texts: list[str] = []
    used: list[Path] = []
    length, previous, last_floor, bad = 0, -1, 0.0, set()
    for _ in range(100 + 4 * len(table)):
        index = rng.randrange(len(table))
        if index in bad or (index == previous and len(table) - len(bad) > 1):
            continue
        loaded = _load(table[index][1])
        if loaded is None:
            bad.add(index)
            if len(bad) == len(table):
                raise WavTokenizerError(f"{voice.key}: none of its {len(table)} clips can be read")
            continue
        audio, floor = loaded
        gap = int(rng.uniform(*PAUSE_SECONDS) * SAMPLING_RATE) if pieces else 0
        if length + gap + len(audio) > limit:
            if length >= least:
                break
            continue  # too long to fit: draw another
        if gap:
            noise = np.random.default_rng(rng.getrandbits(64)).normal(0.0, min(floor, last_floor), gap)
            pieces.append(noise.astype(np.float32))
        pieces.append(audio)
        texts.append(table[index][0])
        used.append(table[index][1])
        length += gap + len(audio)
        previous, last_floor = index, floor
        if length >= target:
            break
    if length < least:
        raise WavTokenizerError(f"{voice.key}: could not string {MIN_SECONDS:.0f} s of speech from its clips")
    return " ".join(texts), _finish(np.concatenate(pieces), voice.backend, used)


def speak(text: str, voice: Voice, speed: float = 1.0, pitch: float = 0.0, seed: int = 0) -> Speech:
    """Recordings: where `text` is one of the voice's clip texts, that clip (one of them, by `seed`, where several
    say it); otherwise `utterance(voice, seed)`'s audio, whatever `text` says. `speed` and `pitch` are ignored."""
    table = clips(voice)
    matches = [path for clip_text, path in table if clip_text == text.strip()]
    for path in random.Random(f"{voice.key}/{seed}/{text}").sample(matches, len(matches)):
        loaded = _load(path)
        if loaded is not None:
            return _finish(loaded[0].copy(), voice.backend, [path])
    return utterance(voice, seed)[1]
