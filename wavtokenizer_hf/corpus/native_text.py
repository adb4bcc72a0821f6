"""Sentences in other languages than English, for voices that read their own language: the translated messages
(gettext catalogues, `/usr/share/locale/<lang>/LC_MESSAGES/*.mo`) of the Debian packages installed on this machine.

They are short, plain sentences written by translators ("Die Datei konnte nicht geöffnet werden."), under the
licences of their packages (mostly GPL/LGPL). What a machine holds depends on what is installed, so each pool's size
and hash go into the corpus summary. Only whole lines of letters and ordinary punctuation are kept (no placeholders,
markup, digits or Latin-script words in another script's text), each assigned to a split by a hash of its text.
"""

from __future__ import annotations

import functools
import gettext
import hashlib
import re
import unicodedata
from pathlib import Path

from .text import hash_split

LOCALE_DIR = Path("/usr/share/locale")
LICENCE = "translated messages of installed Debian packages (gettext catalogues; mostly GPL/LGPL)"
# espeak-ng / voice language -> gettext locale directories (first that has text wins)
LOCALES = {
    "pt-br": ["pt_BR", "pt"], "pt": ["pt", "pt_BR"], "pt-pt": ["pt", "pt_BR"], "zh": ["zh_CN", "zh_TW"],
    "es-mx": ["es"], "es-vz": ["es"], "es-es": ["es"], "fr-be": ["fr"], "fr-ca": ["fr"], "fr-fr": ["fr"],
    "nb": ["nb", "no"], "nds": ["nds"],
}
SPLIT_SHARES = {"train": 0.8, "validation": 0.1, "test": 0.1}
# placeholders, markup, digits, quoted option names ('no', "--all"); an apostrophe inside a word stays (l'homme)
_FORBIDDEN = re.compile(r"[0-9%{}<>\\/_=@$|\[\]()`*#&^~+\"“”„«»‘’]|--|\.\.\.|\s{2,}|(?:^|\s)-\w|"
                        r"(?<![^\W\d_])'|'(?![^\W\d_])")  # ...and command-line options (" -n")
_UNSPACED = {"zh", "ja"}  # scripts written without spaces: length in characters


def locales_for(language: str) -> list[str]:
    return LOCALES.get(language, [language.split("-")[0]])


def _script(language: str) -> str:
    return "latin" if language.split("-")[0] in LATIN_SCRIPT else "other"


# Languages the voices speak that are written in Latin script (others: Arabic, Greek, Hebrew, Cyrillic, Indic, CJK)
LATIN_SCRIPT = {"af", "ca", "cs", "da", "de", "en", "eo", "es", "et", "fi", "fr", "hr", "hu", "id", "is", "it", "la",
                "lt", "mi", "ms", "nb", "nds", "nl", "nn", "pl", "pt", "ro", "sk", "sl", "sq", "sv", "tr"}


def _speakable(line: str, language: str) -> bool:
    if _FORBIDDEN.search(line) or not (line[:1].isalpha() or line[:1] in "¿¡"):
        return False
    if any(unicodedata.category(c)[0] not in "LPZM" for c in line):
        return False
    base = language.split("-")[0]
    if base in _UNSPACED:
        return 6 <= len(line) <= 40 and not re.search(r"[A-Za-z]", line)
    words = line.split()
    if not 4 <= len(words) <= 20:
        return False
    # another script's text with Latin words in it would switch the voice to English mid-sentence
    return _script(language) == "latin" or not re.search(r"[A-Za-z]", line)


def text_split(sentence: str) -> str:
    return hash_split(sentence.lower(), SPLIT_SHARES)


@functools.lru_cache(maxsize=None)
def sentence_pools(language: str, locale_dir: str = str(LOCALE_DIR)) -> dict[str, list[str]]:
    """{split: sorted sentences} in `language` from the machine's catalogues (empty lists where there are none)."""
    found: set[str] = set()
    for locale in locales_for(language):
        for path in sorted(Path(locale_dir).glob(f"{locale}/LC_MESSAGES/*.mo")):
            try:
                with path.open("rb") as handle:
                    catalogue = gettext.GNUTranslations(handle)._catalog  # noqa: SLF001 (the only way to list it)
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            for translated in catalogue.values():
                if not isinstance(translated, str):
                    continue
                for line in translated.splitlines():
                    line = " ".join(line.split())
                    if line and _speakable(line, language):
                        found.add(line)
        if found:
            break
    pools: dict[str, list[str]] = {name: [] for name in SPLIT_SHARES}
    for sentence in sorted(found):
        pools[text_split(sentence)].append(sentence)
    return pools


def pool_fingerprint(pools: dict[str, list[str]]) -> str:
    digest = hashlib.sha1()
    for split in sorted(pools):
        for sentence in pools[split]:
            digest.update(sentence.encode() + b"\n")
    return digest.hexdigest()[:12]
