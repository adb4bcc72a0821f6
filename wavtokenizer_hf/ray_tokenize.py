"""Tokenizing past one machine on Ray Data: read audio -> decode, resample and validate in CPU tasks -> encode in an
actor pool (one model per actor; one GPU each where the cluster has GPUs) -> parquet parts written by the driver.

    tokenize_with_ray("data/wavs", "out", "wavtokenizer", address="10.0.0.1:6379")

The output is the sharded job's (`tokenization.py`) with one shard: `shard-00000-of-00001/part-NNNNN.parquet`, its
`_PLAN.json` and `_COMPLETE.json`, so `--check` and the LM loaders read it unchanged, and either engine can finish a
job the other started. Part k holds the inputs k x rows_per_part ... in the input's fixed order, so a rerun with the
same arguments writes only the parts that are missing (nothing twice, nothing lost); a bad file is recorded with its
reason and never stops the job; a task or actor lost with its node is retried by Ray.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WavTokenizerError
from .listing import audio_files, manifest_entries
from .run_lock import OutputLock
from .saved_dataset import is_saved_dataset, load_split
from .tokenization import (
    DatasetTokenizer,
    ensure_plan,
    part_path,
    shard_dir,
    shard_plan,
    write_complete,
    write_part,
)

INSTALL_HINT = 'pip install "wavtokenizer-hf[ray]"'
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au")


# --- what to read ------------------------------------------------------------------------------------------------

def list_sources(source: str, split: str = "train", audio_column: str = "audio") -> tuple[list[str], list[str]]:
    """(ids, references) in a fixed order. A reference is an audio file (a local path or a URI that pyarrow's
    filesystems open, e.g. s3://bucket/a.flac), `dataset:N` (row N of a saved `datasets` dataset) or `FILE#N` (row N
    of a parquet file with an `id` and an audio column of bytes or {bytes, path})."""
    if "://" in source:
        return _list_uri(source, audio_column)
    path = Path(source)
    if not path.exists():
        raise WavTokenizerError(f"input not found: {source}")
    if is_saved_dataset(path):
        dataset = load_split(path, split)
        if audio_column not in dataset.column_names:
            raise WavTokenizerError(f"{path} has no column {audio_column!r} (columns: {dataset.column_names})")
        ids = dataset["id"] if "id" in dataset.column_names else [str(i) for i in range(len(dataset))]
        return list(ids), [f"dataset:{i}" for i in range(len(dataset))]
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet")) and not audio_files(path)):
        files = [path] if path.is_file() else sorted(path.glob("*.parquet"))
        return _parquet_rows([str(f.resolve()) for f in files], audio_column, None)
    if path.suffix == ".jsonl":
        entries = manifest_entries(path)
        return [id_ for id_, _ in entries], [str(Path(audio).resolve()) for _, audio in entries]
    files = audio_files(path)
    return [str(p.relative_to(path)) for p in files], [str(p.resolve()) for p in files]


def _list_uri(uri: str, audio_column: str) -> tuple[list[str], list[str]]:
    from pyarrow import fs

    try:
        filesystem, root = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(root)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a bad URI
        raise WavTokenizerError(f"input {uri}: cannot open ({err})") from None
    if info.type == fs.FileType.NotFound:
        raise WavTokenizerError(f"input not found: {uri}")
    scheme = uri.split("://", 1)[0]
    if info.type == fs.FileType.File:
        found = [info]
    else:
        found = sorted((f for f in filesystem.get_file_info(fs.FileSelector(root, recursive=True))
                        if f.type == fs.FileType.File), key=lambda f: f.path)
    parquet = [f for f in found if f.path.endswith(".parquet")]
    if parquet:
        return _parquet_rows([f"{scheme}://{f.path}" for f in parquet], audio_column, filesystem)
    audio = [f for f in found if f.path.lower().endswith(AUDIO_SUFFIXES)]
    base = root.rstrip("/") + "/"
    return [f.path[len(base):] if f.path.startswith(base) else f.path for f in audio], \
        [f"{scheme}://{f.path}" for f in audio]


def _parquet_rows(files: list[str], audio_column: str, filesystem) -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq

    ids, refs = [], []
    for name in files:
        table = pq.read_table(_strip(name), columns=None, filesystem=filesystem or _filesystem(name))
        if audio_column not in table.column_names:
            raise WavTokenizerError(f"{name} has no column {audio_column!r} (columns: {table.column_names})")
        rows = table.column("id").to_pylist() if "id" in table.column_names else list(range(table.num_rows))
        ids += [str(r) for r in rows]
        refs += [f"{name}#{i}" for i in range(table.num_rows)]
    return ids, refs


def _filesystem(name: str):
    from pyarrow import fs

    return fs.FileSystem.from_uri(name)[0] if "://" in name else fs.LocalFileSystem()


def _strip(name: str) -> str:
    return name.split("://", 1)[1] if "://" in name else name


_PROCESS_CACHE: dict[Any, Any] = {}  # per worker process: opened datasets, parquet tables, tokenizers


def _cached(key, make):
    if key not in _PROCESS_CACHE:
        _PROCESS_CACHE[key] = make()
    return _PROCESS_CACHE[key]


def read_reference(reference: str, source: str, split: str, audio_column: str) -> Any:
    """An audio value `DatasetTokenizer.waveform` decodes: a local path, or {bytes} of a URI, a dataset row or a
    parquet row."""
    if reference.startswith("dataset:"):
        from datasets import Audio

        def open_split():
            dataset = load_split(source, split)
            if isinstance(dataset.features.get(audio_column), Audio):
                dataset = dataset.cast_column(audio_column, Audio(decode=False))
            return dataset

        return _cached(("dataset", source, split, audio_column), open_split)[int(reference[8:])][audio_column]
    if "#" in reference and reference.rsplit("#", 1)[0].endswith(".parquet"):
        import pyarrow.parquet as pq

        name, row = reference.rsplit("#", 1)
        table = _cached(("parquet", name, audio_column), lambda: pq.read_table(
            _strip(name), columns=[audio_column], filesystem=_filesystem(name)))
        value = table.column(audio_column)[int(row)].as_py()
        return value if isinstance(value, dict) else {"bytes": value, "path": None}
    if "://" in reference:
        with _filesystem(reference).open_input_file(_strip(reference)) as handle:
            return {"bytes": handle.read(), "path": None}
    return reference


# --- the pipeline's stages ----------------------------------------------------------------------------------------

def decode_batch(batch: dict[str, np.ndarray], model_dir: str, source: str, split: str,
                 audio_column: str) -> dict[str, list]:
    """CPU task: each reference read, decoded, checked and resampled to the model's rate (an error kept as text)."""
    tokenizer = _cached(("tokenizer", model_dir), lambda: DatasetTokenizer(model_dir))
    waves, errors = [], []
    for reference, id_ in zip(batch["reference"], batch["id"]):
        try:
            value = read_reference(str(reference), source, split, audio_column)
            waves.append(tokenizer.waveform(value, what=str(id_)).numpy())
            errors.append("")
        except (WavTokenizerError, OSError) as err:
            waves.append(np.zeros(0, dtype=np.float32))
            errors.append(str(err) or type(err).__name__)
    return {"position": list(batch["position"]), "id": list(batch["id"]), "wave": waves, "error": errors}


class Encoder:
    """Actor: one model, loaded once; encodes each batch with the exact batched encoder (sorted by length)."""

    def __init__(self, model_dir: str, device: str | None = None, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = DatasetTokenizer(model_dir, device=device)
        self.tokenizer._fast(None)  # load now: a model that does not load fails the actor, not a batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        import torch

        good = [i for i, error in enumerate(batch["error"]) if not error]
        codes: list[np.ndarray] = [np.zeros(0, dtype=np.int32)] * len(batch["error"])
        encoded = self.tokenizer.encode_waveforms([torch.from_numpy(np.asarray(batch["wave"][i], dtype=np.float32))
                                                   for i in good]) if good else []
        for i, c in zip(good, encoded):
            codes[i] = np.asarray(c, dtype=np.int32)
        return {"position": list(batch["position"]), "id": list(batch["id"]), "codes": codes,
                "error": list(batch["error"])}


# --- the job ------------------------------------------------------------------------------------------------------

def check_address(address: str, timeout: float = 5.0) -> None:
    """A clear error, at once, where no Ray cluster answers at `address` (host:port of its GCS)."""
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if address.startswith("ray://") or not host or not port.isdigit():
        raise WavTokenizerError(f"--address {address!r}: expected HOST:PORT of a running Ray cluster's head "
                                "(`ray start --head` prints it) or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise WavTokenizerError(f"no Ray cluster answers at {address} ({err.strerror or err}); start one with "
                                "`ray start --head` or pass its head's HOST:PORT") from None


def tokenize_with_ray(source: str | os.PathLike, out_dir: str | os.PathLike, model_dir: str | os.PathLike,
                      address: str | None = None, split: str = "train", audio_column: str = "audio",
                      rows_per_part: int = 256, batch_size: int = 16, encoders: int | None = None,
                      progress: bool = True) -> dict:
    """Tokenize `source` on a Ray cluster (`address`; None starts a local one on this machine) into the sharded
    job's layout under `out_dir`; returns a summary. Bad files are recorded (`_COMPLETE.json`: skipped), never fatal."""
    try:
        import ray
    except ImportError:
        raise WavTokenizerError(f"the Ray engine needs ray[data]: {INSTALL_HINT}") from None
    model_dir = str(Path(model_dir).resolve())
    if not (Path(model_dir) / "config.json").exists():
        raise WavTokenizerError(f"no codec at {model_dir} (config.json missing)")
    source = str(source) if "://" in str(source) else str(Path(source).resolve())
    ids, refs = list_sources(source, split, audio_column)
    if not ids:
        raise WavTokenizerError(f"no audio in {source}")
    if address:
        check_address(address)
    out_dir = Path(out_dir)
    directory = shard_dir(out_dir, 1, 0)
    started = time.perf_counter()
    with OutputLock(directory, "tokenizer for this output"):
        plan = shard_plan(ids, range(len(ids)), rows_per_part, 1, 0, model_dir)
        ensure_plan(directory, plan)
        parts = -(-len(ids) // rows_per_part)
        pending = [k for k in range(parts) if not part_path(directory, k).exists()]
        tokenizer = DatasetTokenizer(model_dir)
        if pending:
            connected_here = not ray.is_initialized()
            if connected_here:
                ray.init(address=address, **({} if address else {"_node_ip_address": "127.0.0.1"}),
                         include_dashboard=False, log_to_driver=False, configure_logging=False)
            try:
                _run(ray, ids, refs, pending, rows_per_part, directory, plan, model_dir, source, split, audio_column,
                     batch_size, encoders, tokenizer, progress)
            finally:  # a connection this call made ends with it, not in Ray's exit hooks (noisy after a failed job)
                if connected_here:
                    ray.shutdown()
        skipped = write_complete(directory, plan, parts, tokenizer.frame_rate)
    return {"parts_written": len(pending), "parts_skipped": parts - len(pending), "files_skipped": len(skipped),
            "rows": len(ids) - len(skipped), "seconds": round(time.perf_counter() - started, 2)}


def _run(ray, ids, refs, pending, rows_per_part, directory, plan, model_dir, source, split, audio_column,
         batch_size, encoders, tokenizer, progress) -> None:
    import ray.data
    from tqdm import tqdm

    positions = [p for k in pending for p in range(k * rows_per_part, min(len(ids), (k + 1) * rows_per_part))]
    items = ray.data.from_items([{"position": p, "id": ids[p], "reference": refs[p]} for p in positions])
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    size = encoders or max(1, gpus or int(resources.get("CPU", 1)) // 2)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts files; Ray's logs every stage every few seconds
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # a failure is reported once, below, in one line
    # a lost node: Ray Data retries its tasks and restarts its actors (with their calls) by default, without limit
    decoded = items.map_batches(decode_batch, batch_size=batch_size, num_cpus=0.5, fn_kwargs=dict(
        model_dir=model_dir, source=source, split=split, audio_column=audio_column))  # not fused into the actors
    encoded = decoded.map_batches(
        Encoder, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=size),
        num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
        fn_constructor_kwargs=dict(model_dir=model_dir, threads=None if gpus else 1))
    waiting: dict[int, dict[int, tuple[str, np.ndarray, str]]] = {k: {} for k in pending}
    bar = tqdm(total=len(positions), desc="ray tokenize", unit="file", disable=not progress)
    try:
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            for position, id_, codes, error in zip(batch["position"], batch["id"], batch["codes"], batch["error"]):
                part = int(position) // rows_per_part
                if int(position) in waiting.get(part, {}):
                    continue  # a retried task's duplicate
                waiting[part][int(position)] = (str(id_), np.asarray(codes), str(error))
                bar.update(1)
                size_of_part = min(len(ids), (part + 1) * rows_per_part) - part * rows_per_part
                if len(waiting[part]) == size_of_part:
                    _write(directory, part, waiting.pop(part), tokenizer)
    except ray.exceptions.RayError as err:
        raise WavTokenizerError(f"the Ray job failed: {_first_line(err)}") from None
    finally:
        bar.close()
    if waiting:
        raise WavTokenizerError(f"{len(waiting)} part(s) did not get all their rows; rerun to finish them")


def _write(directory: Path, part: int, rows: dict[int, tuple[str, np.ndarray, str]], tokenizer) -> None:
    wide = tokenizer.codebook_size > 2**15
    dtype = np.int32 if wide else np.int16
    table: dict[str, list] = {"id": [], "audio_codes": [], "num_frames": [], "frame_rate": []}
    skipped = []
    for position in sorted(rows):
        id_, codes, error = rows[position]
        if error:
            skipped.append({"id": id_, "reason": error})
            continue
        table["id"].append(id_)
        table["audio_codes"].append(codes.astype(dtype))
        table["num_frames"].append(len(codes))
        table["frame_rate"].append(tokenizer.frame_rate)
    write_part(directory, part, table, skipped, wide, tokenizer.identity)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    for line in text.splitlines():
        if "WavTokenizerError" in line or "Error:" in line:
            return line.strip()
    return text.splitlines()[0] if text else type(err).__name__
