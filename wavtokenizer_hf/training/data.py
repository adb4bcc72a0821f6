"""Training data: fixed-length random crops with random gain, from a saved corpus, an audio folder or a manifest.

Every crop is a pure function of (seed, epoch, clip index), and the sampler's order of (seed, epoch), so a run
resumed mid-epoch sees exactly the batches an uninterrupted run would; the epoch travels in the sampler's keys, so
the loader's workers persist across epochs. Decoding, resampling, cropping and gain
happen in the loader's worker processes.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
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
from .phones import TimedPhones, frame_labels
from .pitch_teacher import frame_pitch_labels
from .whisper_teacher import frame_targets


@dataclass(frozen=True)
class RowSelection:
    """Which rows of a saved corpus to train on (every field empty keeps them all)."""

    sources: tuple[str, ...] = ()  # rows whose `source` contains one of these texts (case-insensitive)
    kinds: tuple[str, ...] = ()  # rows of these kinds (speech, music, noise)
    speakers: int = 0  # rows of this many speakers drawn with `seed` (rows naming no speaker are kept)
    hours: float = 0.0  # a seeded subset of rows holding this many hours (refused if the selection holds fewer)
    seed: int = 0
    # F0 band edges (Hz): each band's rows (by their speaker's median F0) repeated so the bands hold about equal hours
    f0_bands: tuple[float, ...] = ()

    def is_empty(self) -> bool:
        return not (self.sources or self.kinds or self.speakers or self.hours or self.f0_bands)


class ClipSource:
    """Random access to training clips: FLAC bytes of a saved corpus split, or audio file paths."""

    def __init__(self, location: str | Path, split: str = "train", selection: RowSelection = RowSelection(),
                 with_phones: bool = False):
        location = Path(location)
        self.dataset = None
        self.paths: list[Path] = []
        self.summary = ""
        self.phones: list[list[dict]] = []  # per clip, with_phones: its timed phones ([] where untimed)
        self.teacher: list[np.ndarray] | None = None  # per clip, with the Whisper teacher: its features (trainer sets)
        self.pitch: list[np.ndarray] | None = None  # per clip, with the pitch teacher: its F0 track (trainer sets)
        if not location.exists():
            raise WavTokenizerError(f"training data not found: {location}")
        if is_saved_dataset(location):
            self.dataset = load_split(location, split)
            if not selection.is_empty():
                self.dataset, self.summary = select_rows(self.dataset, selection, location)
            if with_phones:
                if "phones" not in self.dataset.column_names:
                    raise WavTokenizerError(f"loss.phones needs a corpus with a `phones` column; {location} has none")
                self.phones = list(self.dataset["phones"])
            self.dataset = self.dataset.select_columns(["audio"])
        elif location.is_file() and location.suffix == ".jsonl":
            self.paths = [audio for _, audio in manifest_entries(location)]
        elif location.is_dir():
            self.paths = audio_files(location)
        else:
            raise WavTokenizerError(f"{location}: expected a saved corpus, an audio folder or a .jsonl manifest")
        if with_phones and self.dataset is None:
            raise WavTokenizerError(f"loss.phones needs a saved corpus with phone timings; {location} is not one")
        if not selection.is_empty() and self.dataset is None:
            raise WavTokenizerError(f"data.sources, kinds, speakers and hours select rows of a saved corpus; "
                                    f"{location} is not one")
        if len(self) == 0:
            raise WavTokenizerError(f"no training audio in {location}")

    def __len__(self) -> int:
        return len(self.dataset) if self.dataset is not None else len(self.paths)

    def raw_bytes(self, index: int) -> bytes:
        """The clip's encoded audio as stored (what identifies it, e.g. for a cache of features)."""
        if self.dataset is not None:
            return self.dataset[index]["audio"]["bytes"]
        return Path(self.paths[index]).read_bytes()

    def read(self, index: int) -> tuple[np.ndarray, int]:
        if self.dataset is not None:
            data, rate = sf.read(io.BytesIO(self.dataset[index]["audio"]["bytes"]), dtype="float32", always_2d=True)
        else:
            data, rate = sf.read(self.paths[index], dtype="float32", always_2d=True)
        return data.mean(axis=1), rate


def select_rows(dataset, selection: RowSelection, location: Path):
    """The rows `selection` keeps, chosen in memory (the corpus folder is not written to), and a one-line summary
    (rows, hours, speakers) for the training log."""
    columns = dataset.remove_columns([c for c in ("audio",) if c in dataset.column_names])
    keep = list(range(len(dataset)))
    if selection.sources:
        if "source" not in columns.column_names:
            raise WavTokenizerError(f"data.sources: {location} has no `source` column")
        wanted = [text.lower() for text in selection.sources]
        sources = columns["source"]
        keep = [i for i in keep if any(w in (sources[i] or "").lower() for w in wanted)]
        if not keep:
            raise WavTokenizerError(f"data.sources {list(selection.sources)}: no row of {location} has such a source")
    if selection.kinds:
        kinds = columns["kind"] if "kind" in columns.column_names else ["speech"] * len(columns)
        keep = [i for i in keep if kinds[i] in selection.kinds]
        if not keep:
            raise WavTokenizerError(f"data.kinds {list(selection.kinds)}: no selected row of {location} is of those kinds")
    speaker_of = _speaker_column(columns)
    if selection.speakers:
        names = sorted({speaker_of[i] for i in keep if speaker_of[i]})
        if selection.speakers > len(names):
            raise WavTokenizerError(f"data.speakers={selection.speakers}, but the selected rows of {location} hold "
                                    f"{len(names)} speakers")
        drawn = set(np.random.default_rng(selection.seed).choice(names, selection.speakers, replace=False).tolist())
        keep = [i for i in keep if not speaker_of[i] or speaker_of[i] in drawn]
    if selection.hours:
        if "duration" not in columns.column_names:
            raise WavTokenizerError(f"data.hours: {location} has no `duration` column")
        durations = columns["duration"]
        total = sum(durations[i] for i in keep) / 3600
        if total < selection.hours:
            raise WavTokenizerError(f"data.hours={selection.hours:g}, but the selected rows of {location} hold "
                                    f"{total:.2f} h")
        order = np.random.default_rng(selection.seed).permutation(len(keep))
        chosen, seconds = [], 0.0
        for position in order:
            if seconds >= selection.hours * 3600:
                break
            chosen.append(keep[position])
            seconds += durations[keep[position]]
        keep = sorted(chosen)
    balance = ""
    if selection.f0_bands:
        keep, balance = balance_f0_bands(keep, speaker_of, columns, selection.f0_bands, location)
    hours = sum(columns["duration"][i] for i in keep) / 3600 if "duration" in columns.column_names else float("nan")
    summary = (f"{len(keep)} rows, {hours:.2f} h, {len({speaker_of[i] for i in keep if speaker_of[i]})} speakers "
               f"of {location}{balance}")
    return dataset.select(keep, keep_in_memory=True), summary


def speaker_median_f0(location: Path) -> dict[str, float]:
    """Each speaker's median F0 (Hz) as the corpus builder recorded it in `corpus_summary.json`."""
    path = location / "corpus_summary.json"
    if not path.is_file():
        raise WavTokenizerError(f"data.f0_bands needs each speaker's median F0 from {path}, which does not exist "
                                f"(corpora built by scripts/build_corpus.py have it)")
    speakers = json.loads(path.read_text()).get("speakers", {})
    return {name: entry["median_f0_hz"] for name, entry in speakers.items() if entry.get("median_f0_hz")}


def balance_f0_bands(keep: list[int], speaker_of: list[str], columns, edges: tuple[float, ...],
                     location: Path) -> tuple[list[int], str]:
    """`keep` with each F0 band's rows repeated round(largest band's hours / its hours) times, so low and high voices
    weigh about alike; rows naming no speaker (music, noise) stay once. A repeated row is a separate clip, so it gets
    its own crop each epoch."""
    if list(edges) != sorted(edges) or len(set(edges)) != len(edges) or edges[0] <= 0:
        raise WavTokenizerError(f"data.f0_bands must be increasing edges in Hz above 0, not {list(edges)}")
    median_f0 = speaker_median_f0(location)
    missing = sorted({speaker_of[i] for i in keep if speaker_of[i] and speaker_of[i] not in median_f0})
    if missing:
        raise WavTokenizerError(f"data.f0_bands: {location}/corpus_summary.json has no median F0 for "
                                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    durations = columns["duration"] if "duration" in columns.column_names else [1.0] * len(columns)
    band_of = {i: int(np.searchsorted(edges, median_f0[speaker_of[i]], side="right")) for i in keep if speaker_of[i]}
    seconds: dict[int, float] = {}
    for index, band in band_of.items():
        seconds[band] = seconds.get(band, 0.0) + durations[index]
    most = max(seconds.values(), default=0.0)
    repeats = {band: max(1, round(most / total)) for band, total in seconds.items()}
    balanced = sorted(i for i in keep for _ in range(repeats.get(band_of.get(i, -1), 1)))
    names = [f"<{edges[0]:g}"] + [f"{lo:g}-{hi:g}" for lo, hi in zip(edges, edges[1:])] + [f">={edges[-1]:g}"]
    described = ", ".join(f"{names[band]} Hz x{repeats[band]}" for band in sorted(repeats))
    return balanced, f"; F0 bands repeated {described}"


def _speaker_column(columns) -> list[str]:
    """The person of each row: `speaker` where the corpus names one, else the voice (older builds)."""
    for name in ("speaker", "voice"):
        if name in columns.column_names:
            return [value or "" for value in columns[name]]
    return [""] * len(columns)


class RandomCrops(Dataset):
    """One crop of `segment_samples` per clip per epoch; short clips are repeated to length (as the authors do);
    each crop is peak-normalised to a random level in `gain_db` dBFS. With `pitch_semitones` > 0 each crop is
    played faster or slower by a random factor of up to that many semitones (pitch and tempo move together, as in
    speed perturbation), so every voice covers more of the F0 range."""

    def __init__(self, source: ClipSource, segment_samples: int, sampling_rate: int, seed: int = 0,
                 gain_db: tuple[float, float] = (-6.0, -1.0), pitch_semitones: float = 0.0,
                 phone_index: dict[str, int] | None = None, hop: int = 320, with_teacher: bool = False,
                 with_pitch: bool = False):
        if pitch_semitones < 0:
            raise WavTokenizerError(f"data.pitch_semitones must be >= 0, not {pitch_semitones}")
        self.source, self.segment, self.rate, self.seed, self.gain_db = source, segment_samples, sampling_rate, seed, gain_db
        self.pitch_semitones = pitch_semitones
        self.phone_index, self.hop = phone_index, hop  # with a phone index, each crop comes with frame labels
        self.with_teacher = with_teacher  # each crop comes with the Whisper teacher's features per frame
        if with_teacher and source.teacher is None:
            raise WavTokenizerError("the Whisper teacher's features are not loaded (whisper_teacher.teacher_features)")
        self.with_pitch = with_pitch  # each crop comes with a pitch class per codec frame
        if with_pitch and source.pitch is None:
            raise WavTokenizerError("the pitch teacher's F0 tracks are not loaded (pitch_teacher.pitch_tracks)")

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(crop, phone labels per codec frame, Whisper teacher features per codec frame, pitch class per codec
        frame; each empty when not asked for). `key` = epoch x clips + clip (the sampler's keys carry the epoch, so persistent workers need no
        state)."""
        epoch, index = divmod(key, len(self.source))
        rng = np.random.default_rng([self.seed, epoch, index])
        data, rate = self.source.read(index)
        wave = resample(torch.from_numpy(data)[None], rate, self.rate)[0] if rate != self.rate else torch.from_numpy(data)
        played_rate = self.played_rate(rng)
        needed = self.segment if played_rate == self.rate else int(np.ceil(self.segment * played_rate / self.rate)) + 1
        clip_samples = wave.numel()
        if wave.numel() < needed:
            wave = wave.repeat(needed // max(wave.numel(), 1) + 1)
        start = int(rng.integers(0, wave.numel() - needed + 1))
        crop = wave[start:start + needed]
        if played_rate != self.rate:  # samples read at `played_rate`, played at the model's rate
            crop = resample(crop[None], played_rate, self.rate)[0]
        crop = crop[:self.segment]
        peak = float(crop.abs().max())
        level = 10 ** (rng.uniform(*self.gain_db) / 20)
        labels = torch.empty(0, dtype=torch.long)
        if self.phone_index is not None:
            phones = TimedPhones(self.source.phones[index], self.phone_index)
            labels = frame_labels(phones, clip_samples, start, self.segment // self.hop, self.hop,
                                  played_rate / self.rate, self.rate)
        teacher = torch.empty(0)
        if self.with_teacher:
            teacher = frame_targets(self.source.teacher[index], clip_samples, start, self.segment // self.hop,
                                    self.hop, played_rate / self.rate, self.rate)
        pitch = torch.empty(0, dtype=torch.long)
        if self.with_pitch:
            pitch = frame_pitch_labels(self.source.pitch[index], clip_samples, start, self.segment // self.hop,
                                       self.hop, played_rate / self.rate, self.rate)
        return (crop * (level / peak) if peak > 1e-6 else crop), labels, teacher, pitch

    def played_rate(self, rng: np.random.Generator) -> int:
        """The rate the crop's samples are taken to have: the model's rate times 2^(semitones/12), on a 100 Hz
        grid so the resampling kernel stays small. Without augmentation the rng is left untouched."""
        if not self.pitch_semitones:
            return self.rate
        semitones = rng.uniform(-self.pitch_semitones, self.pitch_semitones)
        return int(round(self.rate * 2 ** (semitones / 12) / 100) * 100)


class ResumableSampler(Sampler[int]):
    """A shuffled order per epoch from (seed, epoch); `start` skips the items already consumed this epoch. Yields
    keys epoch x size + item, so the dataset knows the epoch without being told."""

    def __init__(self, size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.size, self.seed, self.num_replicas, self.rank = size, seed, num_replicas, rank
        self.epoch, self.start = 0, 0

    def order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        usable = self.size - self.size % self.num_replicas  # every process gets as many items, so as many steps
        return order[:usable][self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter([self.epoch * self.size + item for item in self.order()[self.start:]])

    def __len__(self) -> int:
        return len(self.order()) - self.start


def make_loader(source: ClipSource, segment_samples: int, sampling_rate: int, batch_size: int, seed: int,
                num_workers: int = 0, num_replicas: int = 1, rank: int = 0, pitch_semitones: float = 0.0,
                phone_index: dict[str, int] | None = None, hop: int = 320, with_teacher: bool = False,
                with_pitch: bool = False) -> DataLoader:
    """A loader of (audio, phone labels, teacher features, pitch classes) batches whose `sampler` carries the epoch and position
    to checkpoint."""
    dataset = RandomCrops(source, segment_samples, sampling_rate, seed, pitch_semitones=pitch_semitones,
                          phone_index=phone_index, hop=hop, with_teacher=with_teacher, with_pitch=with_pitch)
    sampler = ResumableSampler(len(dataset), seed, num_replicas, rank)
    if len(sampler.order()) < batch_size:
        raise WavTokenizerError(f"{len(source)} training clips cannot fill a batch of {batch_size} per process")
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                      generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched
                      persistent_workers=num_workers > 0)  # no re-forking each epoch (a small corpus has short ones)


def set_position(loader: DataLoader, epoch: int, batches_done: int) -> None:
    loader.sampler.epoch = epoch
    loader.sampler.start = batches_done * loader.batch_size
