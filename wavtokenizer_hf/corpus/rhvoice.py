"""RHVoice (Debian non-free `rhvoice` with its `rhvoice-<language>` voice packages): statistical (HTS) voices of ~30
real speakers in ten languages, spoken through the `RHVoice-test` program at 24 kHz. RHVoice reports no word or phone
times, so these voices give the corpus untimed speech (`timed=False`) for codec training.

Optional: `available()` is False without the program or a voice. The CMU ARCTIC voice `clb` is held out for evaluation
and never listed or spoken. Speakers are people: `slt` and `bdl` are the CMU ARCTIC speakers of Flite's and Festival's
voices of those names, `alan` is the ARCTIC speaker `awb` (Alan W Black, Flite's `awb`; RHVoice issues #623, #640),
`evgeniy-eng` and `evgeniy-rus` are one man (Evgeny Chebatkov: their readme and copyright stanza) and `aleksandr-hq`
is, by its readme, a newer version of `aleksandr` (Aleksander Karlov), so each pair is one speaker (merging a pair
costs a speaker; splitting one would leak a person across splits). Licences differ by voice, most non-free
(non-commercial and/or no-derivatives Creative Commons): each Voice carries its own, read from its Debian copyright
file. `speed` maps onto `-r` (percent of the voice's rate) and `pitch` onto `-t` (percent of its F0), both whole
percents that RHVoice clamps to 50..200, so speed must lie in 0.5..2 and pitch in -12..+12 semitones. Synthesis is
deterministic (`seed` is unused); machine-wide settings in /etc/RHVoice/RHVoice.conf would change the output.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import os
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path


from ..errors import WavTokenizerError
from .voices import Speech, Voice, is_reserved, read_pcm16_wav

PROGRAM = "RHVoice-test"
VOICES_DIR = Path("/usr/share/RHVoice/voices")
DOCS = Path("/usr/share/doc")
QUALITY = "max"  # RHVoice's best 24 kHz synthesis; "standard" trades quality for response time, "min" is 16 kHz
LANGUAGES = {  # voice.info language -> (espeak-ng code, the alphabet RHVoice reads for it)
    "english": ("en", "LATIN"), "russian": ("ru", "CYRILLIC"), "ukrainian": ("uk", "CYRILLIC"),
    "polish": ("pl", "LATIN"), "brazilian-portuguese": ("pt-br", "LATIN"), "esperanto": ("eo", "LATIN"),
    "albanian": ("sq", "LATIN"), "kyrgyz": ("ky", "CYRILLIC"), "macedonian": ("mk", "CYRILLIC"),
    "tatar": ("tt", "CYRILLIC"), "georgian": ("ka", "GEORGIAN"), "czech": ("cs", "LATIN"),
    "slovak": ("sk", "LATIN"), "uzbek": ("uz", "LATIN"), "vietnamese": ("vi", "LATIN"),
}
SPEAKERS = {  # voice -> the person's id where it is not the voice's own name
    "alan": "awb",  # CMU ARCTIC awb (Alan W Black), as Flite's `awb`
    "evgeniy-eng": "evgeniy", "evgeniy-rus": "evgeniy",  # both Evgeny Chebatkov (readme, copyright file)
    "aleksandr-hq": "aleksandr",  # a newer build of the `aleksandr` voice (its readme)
}
LICENCES = {  # Debian copyright short names
    "CC-BY-NC-ND-4.0": "CC BY-NC-ND 4.0 (non-commercial, no derivatives)",
    "CC-BY-NC-SA-4.0": "CC BY-NC-SA 4.0 (non-commercial, share-alike)",
    "CC-BY-ND-4.0": "CC BY-ND 4.0 (no derivatives)",
    "CC-BY-SA-4.0": "CC BY-SA 4.0 (share-alike)",
    "Talgat": "Talgat's own licence (use, copying and modification only if not sold or used commercially)",
    "LGPL-2.1+": "LGPL-2.1+ (RHVoice's licence for its data; no voice-specific terms)",
}
LICENCE = ("RHVoice (LGPL-2.1+) with Debian non-free voices under per-voice licences (each Voice's `licence`): CC "
           "BY-NC-ND 4.0 for most RHVoice Lab and Polish voices, CC BY-ND 4.0, CC BY-SA 4.0, CC BY-NC-SA 4.0, "
           "Talgat's non-commercial licence, or LGPL-2.1+ where the copyright file names no voice-specific terms")
MIN_PERCENT, MAX_PERCENT = 50, 200  # RHVoice clamps rate and pitch to these (measured)


def available() -> bool:
    return shutil.which(PROGRAM) is not None and bool(_voice_dirs())


def version() -> str:
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "rhvoice"], capture_output=True, text=True)
        found = result.stdout.strip() if result.returncode == 0 else ""
    except OSError:
        found = ""
    return f"RHVoice {found or '(version unknown)'} ({PROGRAM}, quality {QUALITY})"


def _voice_dirs() -> list[Path]:
    if not VOICES_DIR.is_dir():
        return []
    return sorted(path for path in VOICES_DIR.iterdir() if (path / "voice.info").is_file())


def _info(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _copyright_licences(path: Path) -> list[tuple[list[str], str]]:
    """(file patterns, licence short name) of each stanza of a Debian machine-readable copyright file, in order."""
    stanzas, files, field = [], None, ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line[:1] not in (" ", "\t") and ":" in line:
            field, _, value = line.partition(":")
            if field == "Files":
                files = value.split()
            elif field == "License" and files is not None:
                stanzas.append((files, value.strip()))
                files = None
        elif field == "Files" and files is not None:
            files.extend(line.split())
        elif not line.strip():
            files, field = None, ""
    return stanzas


def _licence(directory: str, package: str) -> str:
    copyright_file = DOCS / package / "copyright"
    if not copyright_file.is_file():
        return f"unknown: no {copyright_file} (RHVoice voices are Debian non-free)"
    name = ""
    for patterns, short in _copyright_licences(copyright_file):  # the last matching stanza wins (DEP-5)
        if any(fnmatch.fnmatchcase(f"data/voices/{directory}/voice.info", pattern) for pattern in patterns):
            name = short
    return (f"{LICENCES.get(name, name or 'unknown')}, voice '{directory}' of Debian non-free {package} "
            f"(see {copyright_file})")


def _speaker(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()  # letícia-f123 -> leticia-f123
    return SPEAKERS.get(name, folded)


@functools.lru_cache(maxsize=1)
def installed_voices() -> list[Voice]:
    """Every installed RHVoice voice of a known language except the reserved ones, sorted by name. `name` is
    RHVoice's voice name lower-cased (it matches names without regard to case)."""
    if shutil.which(PROGRAM) is None:
        return []
    voices = []
    for path in _voice_dirs():
        fields = _info(path / "voice.info")
        name = fields.get("name", path.name).lower()
        language = fields.get("language", "").lower()
        if language not in LANGUAGES or is_reserved("rhvoice", name) or is_reserved("rhvoice", _speaker(name)):
            continue
        sex = fields.get("gender", "unknown").lower()
        voices.append(Voice(backend="rhvoice", name=name, speaker=_speaker(name),
                            sex=sex if sex in ("female", "male") else "unknown", language=LANGUAGES[language][0],
                            licence=_licence(path.name, f"rhvoice-{language}"), timed=False, pitch_shift=True,
                            free=False))  # Debian non-free: trained voices without the means to retrain them
    return sorted(voices, key=lambda voice: voice.name)


def _alphabet(language: str) -> str:
    return next((script for code, script in LANGUAGES.values() if code == language), "")


def _percent(value: float, what: str, voice: Voice) -> int:
    percent = round(100 * value) if math.isfinite(value) else -1
    if not MIN_PERCENT <= percent <= MAX_PERCENT:
        raise WavTokenizerError(f"rhvoice voice {voice.name}: {what} gives {percent}% of the voice's own, outside "
                                f"the {MIN_PERCENT}..{MAX_PERCENT}% RHVoice can speak")
    return percent


def speak(text: str, voice: Voice, speed: float = 1.0, pitch: float = 0.0, seed: int = 0) -> Speech:
    """Speak `text` (UTF-8, in the voice's language and alphabet) as int16 mono audio at the voice's rate (24 kHz).
    `speed` multiplies the speaking rate (0.5..2, RHVoice's `-r` percent = round(100 * speed)); `pitch` shifts F0 by
    semitones (-12..+12, `-t` percent = round(100 * 2 ** (pitch / 12)): steps of about 0.17 semitone). `seed` is
    unused: the same call gives the same samples."""
    offered = {v.name: v for v in installed_voices()}
    if is_reserved("rhvoice", voice.name.lower()) or is_reserved("rhvoice", voice.speaker):
        raise WavTokenizerError(f"rhvoice voice {voice.name} is held out for evaluation and never spoken here")
    if voice.name.lower() not in offered:  # RHVoice-test would fall back to another voice without a word
        raise WavTokenizerError(f"rhvoice voice {voice.name!r} is not installed (installed: {sorted(offered)})")
    rate = _percent(speed, f"speed {speed}", voice)
    pitch_percent = _percent(2 ** (pitch / 12), f"pitch {pitch:+g} semitones", voice)
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        raise WavTokenizerError(f"rhvoice voice {voice.name}: nothing to say in {text[:40]!r}")
    alphabet = _alphabet(offered[voice.name.lower()].language)
    foreign = [ch for ch in letters if not unicodedata.name(ch, "").startswith(alphabet)]
    if alphabet and foreign:  # RHVoice drops letters outside its language's alphabet without a word
        raise WavTokenizerError(f"rhvoice voice {voice.name}: {len(foreign)} letter(s) of {text[:40]!r} are not "
                                f"{alphabet.lower()} ({''.join(sorted(set(foreign)))[:20]!r})")
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        command = [PROGRAM, "-p", voice.name, "-q", QUALITY, "-r", str(rate), "-t", str(pitch_percent), "-o", wav]
        try:
            result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True,
                                    timeout=60 + len(text) / 10)
        except subprocess.TimeoutExpired:
            raise WavTokenizerError(f"rhvoice voice {voice.name}: {PROGRAM} timed out on {text[:40]!r}") from None
        stderr = result.stderr.decode(errors="replace").strip()[-300:]
        if result.returncode != 0 or not os.path.exists(wav):
            raise WavTokenizerError(f"rhvoice voice {voice.name}: {PROGRAM} exited {result.returncode} without "
                                    f"audio for {text[:40]!r} {stderr}".rstrip())
        audio, rate_hz = read_pcm16_wav(wav, f"rhvoice voice {voice.name}", text)
    return Speech(audio=audio, sampling_rate=rate_hz)
