"""The pitch teacher: each training clip's F0 track (the evaluation's YIN tracker, 10 ms frames, cached) and a
training-only head on the quantised latents that classifies each frame's pitch (cross-entropy over one-semitone bins
and a no-pitch class), so the codes keep the pitch that the encoder hears and the codebook otherwise drops (`benchmarks/pitch_probe.py`
on the stage-6 codec reads F0 within a semitone from 64% of unseen voiced frames before the quantiser, 17% after).

Crops played faster or slower (`data.pitch_semitones`) scale their F0 with the speed, as the resampling does. The head
lives on the generator module for training only: the exported codec stays a stock `WavTokenizerModel`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..evaluation.pitch import F0_MAX, F0_MIN, HOP_SECONDS, track_pitch
from .clip_cache import cached_per_clip

BINS = math.ceil(12 * math.log2(F0_MAX / F0_MIN))  # one-semitone bins over the tracker's range
CLASSES = BINS + 1  # class 0: no pitch (unvoiced or silent)
VERSION = 1  # bump when the tracker or the stored track changes


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wavtokenizer-hf" / "pitch_teacher"


def pitch_classes(f0: np.ndarray) -> np.ndarray:
    """0 where there is no pitch (F0 <= 0), else 1 + the semitone above F0_MIN, clipped to the bins."""
    f0 = np.asarray(f0, dtype=np.float64)
    semitones = np.floor(12 * np.log2(np.maximum(f0, 1e-9) / F0_MIN))
    return np.where(f0 > 0, 1 + np.clip(semitones, 0, BINS - 1), 0).astype(np.int64)


def pitch_tracks(source, cache_dir: str | Path | None = None, progress: bool = True) -> list[np.ndarray]:
    """Every clip's F0 per 10 ms frame (Hz, 0 where unvoiced; float32), from the cache or tracked (and cached)."""

    def compute() -> list[np.ndarray]:
        tracks = []
        for index in tqdm(range(len(source)), desc="pitch teacher", unit="clip", disable=not progress):
            data, rate = source.read(index)
            f0, _ = track_pitch(torch.from_numpy(data), rate)
            tracks.append(f0.astype(np.float32))
        return tracks

    return cached_per_clip(source, cache_dir or default_cache_dir(), f"pitch:{VERSION}", compute)


def frame_pitch_labels(f0: np.ndarray | None, clip_samples: int, start: int, frames: int, hop: int, speed: float,
                       rate: int) -> torch.Tensor:
    """The pitch class of each of a crop's `frames` codec frames (see `phones.frame_labels` for the crop's geometry):
    the tracker's frame nearest each codec frame's centre, its F0 times `speed`."""
    if f0 is None or len(f0) == 0:
        return torch.zeros(frames, dtype=torch.long)
    positions = (start + (np.arange(frames) + 0.5) * hop * speed) % clip_samples
    index = np.minimum(np.round(positions / rate / HOP_SECONDS).astype(np.int64), len(f0) - 1)
    return torch.from_numpy(pitch_classes(f0[index] * speed))
