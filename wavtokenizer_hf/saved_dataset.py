"""Datasets saved with `save_to_disk` (the corpus, tokenized splits): recognise, load one split, decode audio.

Part of the tokenizing core: needs `datasets` and soundfile only, not the corpus builder's voices."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import WavTokenizerError


def read_audio_column(example: dict) -> tuple[np.ndarray, int]:
    """Decode one row's `audio` (FLAC bytes) with soundfile: no torchcodec or FFmpeg needed."""
    data, rate = sf.read(io.BytesIO(example["audio"]["bytes"]), dtype="float32")
    return data, rate


def is_saved_dataset(path: str | Path) -> bool:
    path = Path(path)
    return (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()


def load_split(path: str | Path, split: str):
    """One split of a dataset saved with `save_to_disk` (a plain `Dataset` is returned whole)."""
    from datasets import load_from_disk

    dataset = load_from_disk(str(path))
    if hasattr(dataset, "keys"):
        if split not in dataset:
            raise WavTokenizerError(f"{path} has no split '{split}' (it has {sorted(dataset)})")
        dataset = dataset[split]
    return dataset
