"""What to synthesise: hours spread evenly over speakers (not backends), each utterance with its voice, text, speed and
pitch drawn from the seed.

Training speakers get `SPLIT_HOURS_SHARE["train"]` of the hours and validation's share with other sentences; the test
split's hours go to the test speakers (`catalogue.test_speakers`), who read English test sentences no other split
has. Each voice reads text of its language (`text.py` for English, `native_text.py` for the rest); a Latin-script
voice whose language has no text here reads English through its own phone set; any other voice without text is
dropped with a reason. Recorded speakers (KDE) get at most the audio that exists of them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..errors import WavTokenizerError
from . import native_text
from .catalogue import FALLBACK_TEST_SPEAKER, RECORDING_BACKENDS, Speaker
from .catalogue import test_speakers as choose_test_speakers
from .text import load_sentence_pools, normalize_words
from .voices import Voice

SPLIT_HOURS_SHARE = {"train": 0.85, "validation": 0.05, "test": 0.10}
MIN_SPLIT_SECONDS = 30.0
NONSPEECH_SHARE = 0.1
SPEED_RANGE = (0.8, 1.2)  # speaking-rate multipliers
PITCH_RANGE = (-3.0, 3.0)  # semitones, where the backend can shift pitch
RECORDED_UTTERANCE_SECONDS = 5.5  # mean length of a recorded speaker's utterance (clips joined)
SPARE_TEXTS = 2  # other sentences to try when a voice cannot speak the planned one
# The least speech a split gives one speaker: a corpus too small for all speakers draws a seeded subset (1 hour holds
# about 230 training speakers; validation's speakers are always training speakers)
MIN_SPEAKER_SECONDS = {"train": 12.0, "validation": 4.0, "test": 4.0}


@dataclass
class Item:
    """One planned utterance or non-speech clip."""

    id: str
    split: str
    kind: str  # speech | music | noise
    text: str = ""
    voice: Voice | None = None
    language: str = ""  # of the text read
    speed: float = 1.0
    pitch: float = 0.0  # semitones
    seconds: float = 0.0  # non-speech length
    seed: int = 0
    spare_texts: list[str] = field(default_factory=list)


@dataclass
class Plan:
    items: list[Item]
    test_speakers: list[str]
    skipped: dict[str, str]  # voice key -> reason it is not used
    text_pools: dict[str, dict]  # language -> {size, fingerprint, source}
    english_through: list[str]  # languages whose voices read English (no text of their own here)


def _estimate_seconds(text: str, language: str, speed: float) -> float:
    if language.split("-")[0] in ("zh", "ja"):
        return len(text) / (6.0 * speed) + 0.4
    words = len(normalize_words(text)) if language == "en" else len(text.split())
    return words * 60.0 / (170.0 * speed) + 0.4


class _Texts:
    """Sentence pools per (language, split), shuffled once from the seed, read in turn."""

    def __init__(self, rng: random.Random, exclude: frozenset[str] = frozenset()) -> None:
        self.rng, self.pools, self.next, self.info, self.exclude = rng, {}, {}, {}, exclude
        english = {split: self._unread(pool, "en", split) for split, pool in load_sentence_pools().items()}
        for pool in english.values():
            rng.shuffle(pool)
        self.pools["en"] = english
        self.info["en"] = {"sentences": sum(len(p) for p in english.values()),
                           "source": "Jane Austen's novels (public domain, shipped)"}

    def has(self, language: str) -> bool:
        return self.pool(language) is not None

    def pool(self, language: str) -> dict[str, list[str]] | None:
        if language not in self.pools:
            pools = {k: self._unread(v, language, k) for k, v in native_text.sentence_pools(language).items()}
            if min(len(p) for p in pools.values()) == 0:
                self.pools[language] = None
            else:
                for pool in pools.values():
                    self.rng.shuffle(pool)
                self.pools[language] = pools
                self.info[language] = {"sentences": sum(len(p) for p in pools.values()),
                                       "fingerprint": native_text.pool_fingerprint(pools),
                                       "source": native_text.LICENCE}
        return self.pools[language]

    def _unread(self, pool: list[str], language: str, split: str) -> list[str]:
        """`pool` without the excluded sentences; an exclusion that leaves nothing to read is an error."""
        kept = [text for text in pool if text not in self.exclude]
        if pool and not kept:
            raise WavTokenizerError(f"every {language} {split} sentence is excluded: no sentence left to read")
        return kept

    def take(self, language: str, split: str) -> str:
        pool = self.pool(language)[split]
        index = self.next.get((language, split), 0)
        self.next[(language, split)] = index + 1
        return pool[index % len(pool)]


def _equal_shares(total: float, members: list[str], caps: dict[str, float]) -> dict[str, float]:
    """`total` seconds split equally among `members`, none above its cap; what a capped speaker cannot take goes to
    the others (so the split still gets its hours while any speaker can take more)."""
    shares, left, open_ = {}, total, list(members)
    while open_:
        share = left / len(open_)
        capped = [name for name in open_ if caps.get(name, float("inf")) < share]
        if not capped:
            shares.update({name: share for name in open_})
            break
        for name in capped:
            shares[name] = caps[name]
            left -= caps[name]
            open_.remove(name)
    return shares


def plan_corpus(hours: float, speakers: dict[str, Speaker], seed: int = 0,
                recorded_seconds: dict[str, float] | None = None,
                exclude_texts: frozenset[str] = frozenset(), test_speakers: tuple[str, ...] = ()) -> Plan:
    """Deterministic plan for `hours` of audio in total over `speakers` (from `catalogue.group_speakers`);
    `recorded_seconds`: audio available per recorded speaker; `exclude_texts`: sentences no item reads (e.g. those
    of an earlier test split, so a new one is read on sentences no evaluation has seen); `test_speakers`: the test
    split's speakers instead of `catalogue.TEST_SPEAKERS` (no other split hears them)."""
    if not hours > 0:
        raise WavTokenizerError(f"--hours must be positive, got {hours}")
    rng = random.Random(seed)
    texts = _Texts(rng, frozenset(exclude_texts))
    skipped: dict[str, str] = {}
    english_through: set[str] = set()

    def reading(voice: Voice) -> str | None:
        """The language `voice` reads here, or None (reason recorded)."""
        if voice.backend in RECORDING_BACKENDS or texts.has(voice.language):
            return voice.language
        if voice.language.split("-")[0] in native_text.LATIN_SCRIPT:
            english_through.add(voice.language)
            return "en"
        skipped[voice.key] = f"no text in {voice.language} on this machine"
        return None

    testers = choose_test_speakers(speakers, tuple(test_speakers))
    roles: dict[str, list[tuple[Voice, str]]] = {}
    for name in sorted(speakers):
        if name == FALLBACK_TEST_SPEAKER and name not in testers:
            continue  # its accent and variant stay unheard, in every corpus
        voices = [v for v in speakers[name].voices if name not in testers or v.language == "en"]
        usable = [(v, language) for v in voices if (language := reading(v)) is not None]
        if usable:
            roles[name] = usable
    trainers = [name for name in roles if name not in testers]
    testers = [name for name in testers if name in roles]
    if not testers:
        raise WavTokenizerError("no test speaker can speak here")

    items: list[Item] = []
    recorded_seconds = recorded_seconds or {}
    clips = 0  # music and noise alternate over the whole corpus, so even a tiny one has both
    for split, share in SPLIT_HOURS_SHARE.items():
        target = max(hours * 3600 * share, MIN_SPLIT_SECONDS)
        members = testers if split == "test" else trainers
        room = max(1, int(target * (1 - NONSPEECH_SHARE) / MIN_SPEAKER_SECONDS[split]))
        if len(members) > room:
            members = sorted(rng.sample(members, room))
        if split == "train":
            trainers = members
        caps = {name: recorded_seconds[name] * share / (1 - SPLIT_HOURS_SHARE["test"])
                for name in members if name in recorded_seconds}  # train and validation share what exists
        budgets = _equal_shares(target * (1 - NONSPEECH_SHARE), members, caps)
        index = 0
        for name in members:
            budget = budgets[name]
            planned = 0.0
            while planned < budget:
                voice, language = rng.choice(roles[name])
                speed = round(rng.uniform(*SPEED_RANGE), 3) if voice.rate_change else 1.0
                pitch = round(rng.uniform(*PITCH_RANGE), 2) if voice.pitch_shift else 0.0
                item = Item(id=f"{split}-speech-{index:06d}", split=split, kind="speech", voice=voice,
                            language=language, speed=speed, pitch=pitch, seed=rng.randrange(2**31))
                if voice.backend in RECORDING_BACKENDS:
                    planned += RECORDED_UTTERANCE_SECONDS
                else:
                    item.text = texts.take(language, split)
                    item.spare_texts = [texts.take(language, split) for _ in range(SPARE_TEXTS)]
                    planned += _estimate_seconds(item.text, language, speed)
                items.append(item)
                index += 1
        nonspeech_target, planned, index = target * NONSPEECH_SHARE, 0.0, 0
        while planned < nonspeech_target:
            seconds = round(rng.uniform(3.0, 8.0), 2)
            kind = "music" if clips % 2 == 0 else "noise"
            clips += 1
            items.append(Item(id=f"{split}-{kind}-{index:06d}", split=split, kind=kind, seconds=seconds,
                              seed=rng.randrange(2**31)))
            planned += seconds
            index += 1
    return Plan(items, testers, skipped, texts.info, sorted(english_through))
