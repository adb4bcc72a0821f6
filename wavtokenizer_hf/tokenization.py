"""Tokenize datasets: a callable for `datasets.map` and the sharded, resumable tokenizer behind
`scripts/tokenize_dataset.py`.

    tokenizer = DatasetTokenizer("wavtokenizer")
    ds = ds.map(tokenizer, batched=True, batch_size=64, with_rank=True, num_proc=2)

Audio is decoded with soundfile (an `Audio(decode=False)` column of bytes/paths, decoded `{"array",
"sampling_rate"}` dicts, file paths, or arrays with a sampling rate), mixed down and resampled; each batch is sorted
by length and encoded with the padding-exact batched encoder, so an item's codes never depend on its batch.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from .audio_io import is_audio_path, resample
from .corpus.builder import is_saved_dataset, load_split
from .atomic import atomic_path
from .errors import WavTokenizerError
from .run_lock import OutputLock


def decode_audio_value(value: Any, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
    """One dataset cell -> (mono float32 samples, rate)."""
    if isinstance(value, dict) and value.get("array") is not None:
        data, rate = np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
    elif isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    elif isinstance(value, (str, os.PathLike)):
        data, rate = sf.read(value, dtype="float32", always_2d=True)
    elif isinstance(value, (list, np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise WavTokenizerError("a column of raw arrays needs sampling_rate=... (or a 'sampling_rate' column)")
        data, rate = np.asarray(value, dtype=np.float32), int(sampling_rate)
    else:
        raise WavTokenizerError(f"cannot read audio from a value of type {type(value).__name__}")
    if data.ndim == 2:
        data = data.mean(axis=1) if data.shape[1] <= 16 else data.mean(axis=0)
    return np.ascontiguousarray(data, dtype=np.float32), rate


class DatasetTokenizer:
    """Picklable `datasets.map` callable; the codec loads lazily once per process (rank r uses GPU r if any)."""

    def __init__(self, model_dir: str | os.PathLike, audio_column: str = "audio", sampling_rate: int | None = None,
                 max_batch_samples: int = 24000 * 600, device: str | None = None, precision: str = "fp32"):
        from .inference import PRECISIONS

        if precision not in PRECISIONS:
            raise WavTokenizerError(f"precision {precision!r}; accepted: {', '.join(PRECISIONS)} (fp32 is exact; "
                                    "see BENCHMARKS.md for the others' code agreement)")
        self.precision = precision
        self.model_dir = str(model_dir)
        self.audio_column = audio_column
        self.sampling_rate = sampling_rate
        self.max_batch_samples = max_batch_samples
        self.device = device
        self._parent_pid = os.getpid()
        self._loaded: tuple[int, Any] | None = None

    def _fast(self, rank: int | None):
        if self._loaded is None or self._loaded[0] != os.getpid():
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging

            from .inference import FastWavTokenizer

            hf_logging.disable_progress_bar()
            if os.getpid() != self._parent_pid:
                # a forked map worker: one thread each (OpenMP's pool does not survive fork; N workers share cores)
                torch.set_num_threads(1)
            device = self.device
            if device is None:
                device = f"cuda:{(rank or 0) % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
            model = AutoModel.from_pretrained(self.model_dir).to(device)
            self._loaded = (os.getpid(), FastWavTokenizer(model))
        return self._loaded[1]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_loaded"] = None  # each worker loads its own copy
        return state

    @property
    def frame_rate(self) -> float:
        config = json.loads((Path(self.model_dir) / "config.json").read_text())
        return config["sampling_rate"] / int(np.prod(config["upsampling_ratios"]))

    def encode_waveforms(self, waveforms: list[torch.Tensor], rank: int | None = None) -> list[np.ndarray]:
        """Encode mono waveforms at the model's rate; sorted by length, in batches of bounded total samples."""
        fast = self._fast(rank)
        order = sorted(range(len(waveforms)), key=lambda i: waveforms[i].numel())
        out: list[np.ndarray | None] = [None] * len(waveforms)
        limit = self.max_batch_samples
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and waveforms[order[end]].numel() * (end - start + 1) <= limit:
                end += 1
            group = order[start:end]
            codes = fast.encode_list([waveforms[i] for i in group], self.precision)
            dtype = np.int16 if fast.config.codebook_size <= 2**15 else np.int32
            for i, c in zip(group, codes):
                out[i] = c.numpy().astype(dtype)
            start = end
        return out  # type: ignore[return-value]

    def __call__(self, batch: dict[str, list], rank: int | None = None) -> dict[str, list]:
        fast = self._fast(rank)
        target = fast.config.sampling_rate
        rates = batch.get("sampling_rate") or [self.sampling_rate] * len(batch[self.audio_column])
        waveforms = []
        for value, rate in zip(batch[self.audio_column], rates):
            data, source_rate = decode_audio_value(value, rate)
            wave = torch.from_numpy(data)
            waveforms.append(resample(wave[None], source_rate, target)[0] if source_rate != target else wave)
        codes = self.encode_waveforms(waveforms, rank)
        frame_rate = target / fast.hop_length
        return {"audio_codes": codes, "num_frames": [len(c) for c in codes],
                "frame_rate": [frame_rate] * len(codes),
                "audio_seconds": [w.numel() / target for w in waveforms]}


# --- the sharded, resumable job --------------------------------------------------------------------------------

def list_inputs(source: str | os.PathLike, split: str = "train") -> tuple[list[str], list[Any]]:
    """(ids, audio values) of an audio folder, a saved dataset (one split) or a JSONL manifest, in a fixed order."""
    source = Path(source)
    if not source.exists():
        raise WavTokenizerError(f"input not found: {source}")
    if is_saved_dataset(source):
        from datasets import Audio

        dataset = load_split(source, split)
        if isinstance(dataset.features.get("audio"), Audio):
            dataset = dataset.cast_column("audio", Audio(decode=False))
        ids = dataset["id"] if "id" in dataset.column_names else [str(i) for i in range(len(dataset))]
        return list(ids), dataset["audio"]
    if source.suffix == ".jsonl":
        ids, values = [], []
        for line in source.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                path = Path(entry.get("audio_filepath") or entry.get("path") or entry["audio"])
                path = path if path.is_absolute() else source.parent / path
                ids.append(str(entry.get("id", path)))
                values.append(str(path))
        return ids, values
    files = sorted(p for p in source.rglob("*") if p.is_file() and is_audio_path(p))
    return [str(p.relative_to(source)) for p in files], [str(p) for p in files]


def shard_range(total: int, num_shards: int, shard_index: int) -> range:
    """Contiguous, deterministic slice of `total` items for one shard."""
    if not 0 <= shard_index < num_shards:
        raise WavTokenizerError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    per = -(-total // num_shards)
    return range(min(total, shard_index * per), min(total, (shard_index + 1) * per))


def shard_dir(out_dir: Path, num_shards: int, shard_index: int) -> Path:
    return out_dir / f"shard-{shard_index:05d}-of-{num_shards:05d}"


def tokenize_shard(source: str | os.PathLike, out_dir: str | os.PathLike, model_dir: str | os.PathLike,
                   num_shards: int = 1, shard_index: int = 0, rows_per_part: int = 256, split: str = "train",
                   batch_size: int = 32) -> dict:
    """Tokenize one shard into parquet parts; parts already written (atomically) are skipped on a rerun. A second
    process on the same shard is refused while the first runs."""
    out_dir = Path(out_dir)
    ids, values = list_inputs(source, split)
    items = shard_range(len(ids), num_shards, shard_index)
    directory = shard_dir(out_dir, num_shards, shard_index)
    with OutputLock(directory, "tokenizer for this shard"):
        return _tokenize_shard_parts(ids, values, items, directory, model_dir, num_shards, shard_index,
                                     rows_per_part, batch_size)


def _tokenize_shard_parts(ids, values, items, directory: Path, model_dir, num_shards: int, shard_index: int,
                          rows_per_part: int, batch_size: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tokenizer = DatasetTokenizer(model_dir)
    parts = [items[i:i + rows_per_part] for i in range(0, len(items), rows_per_part)]
    done = skipped = 0
    audio_seconds = 0.0
    start = time.perf_counter()
    progress = tqdm(total=len(items), desc=f"shard {shard_index}/{num_shards}", unit="file")
    for number, part in enumerate(parts):
        path = directory / f"part-{number:05d}.parquet"
        if path.exists():
            progress.update(len(part))
            skipped += 1
            continue
        rows: dict[str, list] = {"id": [], "audio_codes": [], "num_frames": [], "frame_rate": []}
        for chunk in (part[i:i + batch_size] for i in range(0, len(part), batch_size)):
            encoded = tokenizer({"audio": [values[i] for i in chunk]})
            rows["id"] += [ids[i] for i in chunk]
            for key in ("audio_codes", "num_frames", "frame_rate"):
                rows[key] += encoded[key]
            audio_seconds += sum(encoded["audio_seconds"])
            progress.update(len(chunk))
            hours_per_second = audio_seconds / 3600 / max(time.perf_counter() - start, 1e-9)
            progress.set_postfix(audio_h_per_s=f"{hours_per_second:.4f}")
        table = pa.table({
            "id": pa.array(rows["id"], pa.string()),
            "audio_codes": pa.array([c.tolist() for c in rows["audio_codes"]], pa.list_(pa.int16())),
            "num_frames": pa.array(rows["num_frames"], pa.int32()),
            "frame_rate": pa.array(rows["frame_rate"], pa.float32()),
        })
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        done += 1
    progress.close()
    manifest = {"num_shards": num_shards, "shard_index": shard_index, "items": len(items), "parts": len(parts),
                "rows_per_part": rows_per_part, "model": str(model_dir), "frame_rate": tokenizer.frame_rate}
    with atomic_path(directory / "_COMPLETE.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return {"parts_written": done, "parts_skipped": skipped, "audio_seconds": round(audio_seconds, 2),
            "seconds": round(time.perf_counter() - start, 2)}


def check_output(out_dir: str | os.PathLike, num_shards: int) -> dict:
    """Verify that every shard is present and complete (all parts written, row counts as planned)."""
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    problems, rows = [], 0
    for index in range(num_shards):
        directory = shard_dir(out_dir, num_shards, index)
        marker = directory / "_COMPLETE.json"
        if not marker.exists():
            problems.append(f"shard {index}: not complete ({directory} has no _COMPLETE.json)")
            continue
        manifest = json.loads(marker.read_text())
        files = sorted(directory.glob("part-*.parquet"))
        if len(files) != manifest["parts"]:
            problems.append(f"shard {index}: {len(files)} of {manifest['parts']} parts")
        count = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        if count != manifest["items"]:
            problems.append(f"shard {index}: {count} rows, expected {manifest['items']}")
        rows += count
    return {"ok": not problems, "rows": rows, "problems": problems}
