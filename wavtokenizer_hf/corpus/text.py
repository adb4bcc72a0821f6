"""Public-domain sentences shipped with the package, split into disjoint train/validation/test pools."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

TEXT_DIR = Path(__file__).parent / "text"
SENTENCES = TEXT_DIR / "austen_sentences.txt.gz"
# Letters and ordinary punctuation only: digits and symbols are spoken as words the text does not contain.
_SPEAKABLE = re.compile(r"[A-Za-z ,.;:'!?\"-]+")
SPLIT_SHARES = {"train": 0.8, "validation": 0.1, "test": 0.1}


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
            "twelve": "twelfth"}


def number_words(n: int) -> list[str]:
    """English words of a non-negative integer, read as a cardinal: 1905 -> one thousand nine hundred five (years
    are not read as years; what matters is that reference and hypothesis follow the same rule)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (number_words(n % 10) if n % 10 else [])
    for size, name in _SCALES:
        if n >= size:
            return number_words(n // size) + [name] + (number_words(n % size) if n % size else [])
    raise AssertionError(n)


def _spell_number(match: re.Match) -> str:
    whole, fraction, suffix = match.group(1).replace(",", ""), match.group(2), (match.group(3) or "").lower()
    words = number_words(int(whole)) if len(whole) <= 12 else [_ONES[int(d)] for d in whole]
    if fraction:
        words += ["point"] + [_ONES[int(d)] for d in fraction]
    elif suffix in ("st", "nd", "rd", "th"):
        last = words[-1]
        words[-1] = _ORDINAL.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " " + " ".join(words) + " "


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation, numbers spelled out: the form transcripts are compared in (the same
    for reference and recognised text, so "21st" and "twenty-first", "3.5" and "three point five" agree)."""
    text = re.sub(r"(\d[\d,]*)(?:\.(\d+))?(st|nd|rd|th)?", _spell_number, text.replace("%", " percent "))
    return re.findall(r"[a-z]+(?:'[a-z]+)*", text.lower().replace("--", " "))


def sentence_split(sentence: str) -> str:
    """Assign a sentence to a split by a hash of its normalised words (case, punctuation and spacing ignored, so
    near-duplicates share a split): stable however the corpus is sized."""
    return hash_split(" ".join(normalize_words(sentence)))


def hash_split(key: str, shares: dict[str, float] = SPLIT_SHARES) -> str:
    """The split a text key falls in by its SHA-1: the same key lands in the same split in every build."""
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 16**8
    edge = 0.0
    for name, share in shares.items():
        edge += share
        if bucket < edge:
            return name
    return list(shares)[-1]


def load_sentence_pools(min_words: int = 4, max_words: int = 25) -> dict[str, list[str]]:
    """Speakable sentences of the shipped text, grouped into disjoint pools per split (file order kept)."""
    pools: dict[str, list[str]] = {name: [] for name in SPLIT_SHARES}
    with gzip.open(SENTENCES, "rt", encoding="utf-8") as handle:
        for line in handle:
            sentence = " ".join(line.split())
            if _SPEAKABLE.fullmatch(sentence) and min_words <= len(normalize_words(sentence)) <= max_words:
                pools[sentence_split(sentence)].append(sentence)
    return pools
