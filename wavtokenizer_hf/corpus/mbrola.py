"""MBROLA diphone voices (real speakers' recordings, ~30 languages) driven by the system's espeak-ng, whose `mb-*`
voices map its phonemes onto each database.

Untimed: espeak-ng times its events by its own phone lengths, not MBROLA's audio. Measured against the audio's energy
(speech frames vs the events' phones), the events run 1-3 % long and drift 25-165 ms from the audio within one
sentence, so the rows carry no word or phone times rather than wrong ones (the phones still count the diphones below).

Needs Debian's `espeak-ng` (the `espeakng-loader` wheel lacks the `mb-*` voice files), `mbrola` (contrib) and the
`mbrola-XX` databases (non-free: free for non-commercial use only; `make corpus-extras NONFREE=1`). One speaker may have
two voices: `mb-de1` reads German, `mb-de1-en` English through the same diphones. `us1` and `en1` are reserved for
evaluation and never listed. A text that makes MBROLA replace more than `MAX_UNKNOWN_DIPHONES` of its diphones (and more than two) (the
voice lacks them: English spelling through a non-Latin language's rules) is refused rather than spoken as silence.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from pathlib import Path

from ..errors import WavTokenizerError
from . import espeak
from .voices import Speech, Voice, is_reserved

LIBRARY = Path("/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1")
DATA_DIR = Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data")
DATABASES = Path("/usr/share/mbrola")
DOCS = Path("/usr/share/doc")
LICENCE = ("MBROLA voice database (Faculte Polytechnique de Mons and the recording's owner): use with the MBROLA "
           "program only, no sale or use in a sold product, free copying when no charge is made (non-free; see "
           "/usr/share/doc/mbrola-{db}/copyright)")
MAX_UNKNOWN_DIPHONES = 0.15
SKIPPED_VARIANTS = ("grc",)  # mb-de6-grc: ancient Greek
BASE_RATE = 170  # espeak words per minute at speed 1
_UNKNOWN = re.compile(r"unknown, replaced")


def available() -> bool:
    return LIBRARY.exists() and (DATA_DIR / "voices" / "mb").is_dir() and DATABASES.is_dir()


def _voice_file(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] not in fields:
            fields[parts[0]] = parts[1]
    return fields


@functools.lru_cache(maxsize=1)
def installed_voices() -> list[Voice]:
    """Every `mb-*` voice whose database is installed, except the reserved speakers and ancient Greek."""
    if not available():
        return []
    voices = []
    for path in sorted((DATA_DIR / "voices" / "mb").glob("mb-*")):
        fields = _voice_file(path)
        database = fields.get("mbrola")
        variant = path.name.removeprefix("mb-").split("-", 1)[1:] or [""]
        if (not database or not (DATABASES / database).exists() or variant[0] in SKIPPED_VARIANTS
                or is_reserved("mbrola", database)):
            continue
        language = fields.get("language", "")
        # one code per language, a region only where it is an accent of its own (fr-be, es-mx, pt-br)
        language = "en" if language.startswith("en") else {"fr-fr": "fr", "es-es": "es", "pt-pt": "pt"}.get(
            language, language)
        sex = fields.get("gender", "unknown")
        voices.append(Voice(backend="mbrola", name=path.name, speaker=f"mbrola-{database}",
                            sex=sex if sex in ("female", "male") else "unknown", language=language,
                            licence=LICENCE.format(db=database), timed=False, pitch_shift=True, free=False))
    return voices


def version() -> str:
    return f"espeak-ng ({LIBRARY.name}) with MBROLA databases in {DATABASES}"


def speak(text: str, voice: Voice, speed: float = 1.0, pitch: float = 0.0, seed: int = 0) -> Speech:
    """`pitch`: semitones around the voice's own, about (espeak-ng's pitch parameter 50 + 6 per semitone, measured)."""
    with tempfile.TemporaryFile() as errors:
        saved = os.dup(2)
        os.dup2(errors.fileno(), 2)  # the mbrola process writes its warnings to our stderr
        try:
            result = espeak.synthesize(text, voice.name, int(round(BASE_RATE * speed)),
                                       int(round(min(max(50 + 6 * pitch, 0), 100))), 50, seed,
                                       library=str(LIBRARY), data_path=str(DATA_DIR))
        except (RuntimeError, ValueError) as error:
            raise WavTokenizerError(f"mbrola voice {voice.name}: {error}") from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        errors.seek(0)
        warnings = errors.read().decode(errors="replace")
    _, phones = espeak.timings(result, text)
    spoken = [p for p in phones if p["phone"] != "sil"]
    unknown = len(_UNKNOWN.findall(warnings))
    if not spoken or len(result.audio) == 0 or unknown > max(2, MAX_UNKNOWN_DIPHONES * (len(spoken) + 1)):
        raise WavTokenizerError(f"mbrola voice {voice.name}: {unknown} of ~{len(spoken) + 1} diphones missing from "
                                f"its database for {text[:40]!r}")
    return Speech(result.audio, result.sampling_rate)
