"""The speech the probes read: utterances with word and phone timings, and training audio for learned baselines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.errors import WavTokenizerError

from .labels import Interval, forced_alignment, phone_intervals, word_intervals


@dataclass
class ProbeUtterance:
    id: str
    waveform: torch.Tensor  # (samples,) float32
    rate: int
    text: str
    words: list[Interval]
    phones: list[Interval]

    @property
    def sentence(self) -> str:
        """The normalised text (case, punctuation and spacing removed): repeats of one sentence share it."""
        return " ".join(normalize_words(self.text)) or self.id


@dataclass
class TrainingAudio:
    """An utterance a learned baseline may be fitted on."""

    id: str
    waveform: torch.Tensor  # (samples,) float32
    rate: int


def load_probe_set(source: str | Path, split: str = "test", limit: int | None = None) -> list[ProbeUtterance]:
    """Speech with word and phone timings: a saved corpus split, or a folder of audio with transcripts (aligned
    here with pocketsphinx)."""
    from wavtokenizer_hf.corpus.builder import is_saved_dataset, load_split, read_audio_column
    from wavtokenizer_hf.evaluation import load_test_set
    from wavtokenizer_hf.evaluation.runner import EVAL_RATE

    source = Path(source)
    out: list[ProbeUtterance] = []
    if is_saved_dataset(source):
        for row in load_split(source, split):
            if row.get("kind", "speech") != "speech" or not row.get("phones") or row.get("language", "en") != "en":
                continue
            data, rate = read_audio_column(row)
            out.append(ProbeUtterance(row["id"], torch.from_numpy(np.asarray(data, dtype=np.float32)).reshape(-1), rate,
                                      row["text"], word_intervals(row["words"]), phone_intervals(row["phones"])))
            if limit and len(out) >= limit:
                break
    else:
        utterances = [u for u in load_test_set(source, split, limit=limit) if u.text]
        if not utterances:
            raise WavTokenizerError(f"{source}: no audio with transcripts (NAME.txt, transcripts.tsv or manifest.jsonl)")
        for u in tqdm(utterances, desc="forced alignment", unit="file"):
            wave = torch.as_tensor(u.waveform, dtype=torch.float32).reshape(-1)
            try:
                words, phones = forced_alignment(wave, EVAL_RATE, u.text)
            except WavTokenizerError as err:
                print(f"skipped {u.id}: {err}")
                continue
            out.append(ProbeUtterance(u.id, wave, EVAL_RATE, u.text, words, phones))
    if not out:
        raise WavTokenizerError(f"{source}: no speech utterances with timings in split {split!r}")
    return out


def load_training_audio(source: str | Path, split: str = "train", limit: int | None = None,
                        seed: int = 0) -> list[TrainingAudio]:
    """Speech to fit learned baselines on: `limit` speech rows of a saved corpus split, drawn at random (seeded), or
    the audio files of a folder (the split is then ignored)."""
    from wavtokenizer_hf.corpus.builder import is_saved_dataset, load_split, read_audio_column
    from wavtokenizer_hf.evaluation import load_test_set
    from wavtokenizer_hf.evaluation.runner import EVAL_RATE

    source = Path(source)
    if is_saved_dataset(source):
        rows = load_split(source, split)
        kinds = rows["kind"] if "kind" in rows.column_names else ["speech"] * len(rows)
        speech = [i for i, kind in enumerate(kinds) if kind == "speech"]
        if limit and len(speech) > limit:
            speech = sorted(np.random.default_rng(seed).choice(speech, limit, replace=False).tolist())
        out = []
        for row in rows.select(speech):
            data, rate = read_audio_column(row)
            out.append(TrainingAudio(row["id"], torch.from_numpy(np.asarray(data, dtype=np.float32)).reshape(-1), rate))
    else:
        out = [TrainingAudio(u.id, torch.as_tensor(u.waveform, dtype=torch.float32).reshape(-1), EVAL_RATE)
               for u in load_test_set(source, split, limit=limit)]
    if not out:
        raise WavTokenizerError(f"{source}: no speech to fit the baselines on in split {split!r}")
    return out
