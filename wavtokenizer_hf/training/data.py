"""Training data: fixed-length random crops with random gain, from a saved corpus, an audio folder or a manifest.

Every crop is a pure function of (seed, epoch, clip index), and the sampler's order of (seed, epoch), so a run
resumed mid-epoch sees exactly the batches an uninterrupted run would. Decoding, resampling, cropping and gain
happen in the loader's worker processes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..audio_io import resample
from ..saved_dataset import is_saved_dataset, load_split
from ..errors import WavTokenizerError
from ..listing import audio_files, manifest_entries


class ClipSource:
    """Random access to training clips: FLAC bytes of a saved corpus split, or audio file paths."""

    def __init__(self, location: str | Path, split: str = "train", sources: tuple[str, ...] = ()):
        location = Path(location)
        self.dataset = None
        self.paths: list[Path] = []
        if not location.exists():
            raise WavTokenizerError(f"training data not found: {location}")
        if is_saved_dataset(location):
            self.dataset = load_split(location, split)
            if sources:
                self.dataset = rows_from_sources(self.dataset, sources, location)
            self.dataset = self.dataset.select_columns(["audio"])
        elif location.is_file() and location.suffix == ".jsonl":
            self.paths = [audio for _, audio in manifest_entries(location)]
        elif location.is_dir():
            self.paths = audio_files(location)
        else:
            raise WavTokenizerError(f"{location}: expected a saved corpus, an audio folder or a .jsonl manifest")
        if sources and self.dataset is None:
            raise WavTokenizerError(f"data.sources needs a saved corpus with a `source` column; {location} is not one")
        if len(self) == 0:
            raise WavTokenizerError(f"no training audio in {location}")

    def __len__(self) -> int:
        return len(self.dataset) if self.dataset is not None else len(self.paths)

    def read(self, index: int) -> tuple[np.ndarray, int]:
        if self.dataset is not None:
            data, rate = sf.read(io.BytesIO(self.dataset[index]["audio"]["bytes"]), dtype="float32", always_2d=True)
        else:
            data, rate = sf.read(self.paths[index], dtype="float32", always_2d=True)
        return data.mean(axis=1), rate


def rows_from_sources(dataset, sources: tuple[str, ...], location: Path):
    """The rows whose `source` contains one of `sources` (case-insensitive), selected in memory (the corpus
    folder is not written to)."""
    if "source" not in dataset.column_names:
        raise WavTokenizerError(f"data.sources: {location} has no `source` column")
    wanted = [text.lower() for text in sources]
    keep = [i for i, source in enumerate(dataset["source"]) if any(w in (source or "").lower() for w in wanted)]
    if not keep:
        raise WavTokenizerError(f"data.sources {list(sources)}: no row of {location} has such a source")
    return dataset.select(keep, keep_in_memory=True)


class RandomCrops(Dataset):
    """One crop of `segment_samples` per clip per epoch; short clips are repeated to length (as the authors do);
    each crop is peak-normalised to a random level in `gain_db` dBFS."""

    def __init__(self, source: ClipSource, segment_samples: int, sampling_rate: int, seed: int = 0,
                 gain_db: tuple[float, float] = (-6.0, -1.0)):
        self.source, self.segment, self.rate, self.seed, self.gain_db = source, segment_samples, sampling_rate, seed, gain_db
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        data, rate = self.source.read(index)
        wave = resample(torch.from_numpy(data)[None], rate, self.rate)[0] if rate != self.rate else torch.from_numpy(data)
        if wave.numel() < self.segment:
            wave = wave.repeat(self.segment // max(wave.numel(), 1) + 1)
        start = int(rng.integers(0, wave.numel() - self.segment + 1))
        crop = wave[start:start + self.segment]
        peak = float(crop.abs().max())
        level = 10 ** (rng.uniform(*self.gain_db) / 20)
        return crop * (level / peak) if peak > 1e-6 else crop


class ResumableSampler(Sampler[int]):
    """A shuffled order per epoch from (seed, epoch); `start` skips the items already consumed this epoch."""

    def __init__(self, size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.size, self.seed, self.num_replicas, self.rank = size, seed, num_replicas, rank
        self.epoch, self.start = 0, 0

    def order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        usable = self.size - self.size % self.num_replicas  # every process gets as many items, so as many steps
        return order[:usable][self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return len(self.order()) - self.start


def make_loader(source: ClipSource, segment_samples: int, sampling_rate: int, batch_size: int, seed: int,
                num_workers: int = 0, num_replicas: int = 1, rank: int = 0) -> DataLoader:
    """A loader whose `sampler` and `dataset` carry the epoch and position to checkpoint."""
    dataset = RandomCrops(source, segment_samples, sampling_rate, seed)
    sampler = ResumableSampler(len(dataset), seed, num_replicas, rank)
    if len(sampler.order()) < batch_size:
        raise WavTokenizerError(f"{len(source)} training clips cannot fill a batch of {batch_size} per process")
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                      generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched
                      persistent_workers=False)


def set_position(loader: DataLoader, epoch: int, batches_done: int) -> None:
    loader.dataset.epoch = epoch
    loader.sampler.epoch = epoch
    loader.sampler.start = batches_done * loader.batch_size
