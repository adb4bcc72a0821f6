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


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation: the form transcripts are compared in."""
    return re.findall(r"[a-z]+(?:'[a-z]+)*", text.lower().replace("--", " "))


def sentence_split(sentence: str) -> str:
    """Assign a sentence to a split by a hash of its text: stable however the corpus is sized."""
    bucket = int(hashlib.sha1(sentence.encode()).hexdigest()[:8], 16) / 16**8
    edge = 0.0
    for name, share in SPLIT_SHARES.items():
        edge += share
        if bucket < edge:
            return name
    return "test"


def load_sentence_pools(min_words: int = 4, max_words: int = 25) -> dict[str, list[str]]:
    """Speakable sentences of the shipped text, grouped into disjoint pools per split (file order kept)."""
    pools: dict[str, list[str]] = {name: [] for name in SPLIT_SHARES}
    with gzip.open(SENTENCES, "rt", encoding="utf-8") as handle:
        for line in handle:
            sentence = " ".join(line.split())
            if _SPEAKABLE.fullmatch(sentence) and min_words <= len(normalize_words(sentence)) <= max_words:
                pools[sentence_split(sentence)].append(sentence)
    return pools
