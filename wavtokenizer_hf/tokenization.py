"""Tokenize datasets: a callable for `datasets.map` and the sharded, resumable tokenizer behind
`scripts/tokenize_dataset.py`.

    tokenizer = DatasetTokenizer("wavtokenizer")
    ds = ds.map(tokenizer, batched=True, batch_size=64, with_rank=True, num_proc=2)

Audio is decoded with soundfile (an `Audio(decode=False)` column of bytes/paths, decoded `{"array",
"sampling_rate"}` dicts, file paths, or arrays with a sampling rate), mixed down and resampled; each batch is sorted
by length and encoded with the padding-exact batched encoder, so an item's codes never depend on its batch.
"""

from __future__ import annotations

import hashlib
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

from .audio_io import resample, validate_waveform
from .saved_dataset import is_saved_dataset, load_split
from .atomic import atomic_path
from .errors import WavTokenizerError
from .listing import audio_files, manifest_entries
from .run_lock import OutputLock


def _float_samples(array: Any) -> np.ndarray:
    """Float samples as float32; integer PCM refused (as `Codec.encode` refuses it), never cast to +-32767."""
    array = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if array.dtype.kind in "iub":
        raise WavTokenizerError(f"integer audio ({array.dtype}) is not accepted; pass float audio in [-1, 1] "
                                "(divide integer PCM by its full scale, 32768 for 16-bit)")
    return array.astype(np.float32, copy=False)


def decode_audio_value(value: Any, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
    """One dataset cell -> (mono float32 samples, rate)."""
    if isinstance(value, dict) and value.get("array") is not None:
        data, rate = _float_samples(value["array"]), int(value["sampling_rate"])
    elif isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
        data, rate = sf.read(source, dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), rate  # (frames, channels), any count
    elif isinstance(value, (str, os.PathLike)):
        data, rate = sf.read(value, dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), rate
    elif isinstance(value, (list, np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise WavTokenizerError("a column of raw arrays needs sampling_rate=... (or a 'sampling_rate' column)")
        data, rate = _float_samples(value), int(sampling_rate)
    else:
        raise WavTokenizerError(f"cannot read audio from a value of type {type(value).__name__}")
    if data.ndim == 2:  # an array as given: (channels, samples) or (samples, channels), channels the shorter axis
        data = data.mean(axis=0) if data.shape[0] <= data.shape[1] else data.mean(axis=1)
    elif data.ndim != 1:
        raise WavTokenizerError(f"audio array of shape {data.shape}: pass (samples,), (channels, samples) or "
                                "(samples, channels)")
    return np.ascontiguousarray(data, dtype=np.float32), rate


_MAIN_PID = os.getpid()  # forked workers inherit it, so they can tell they are workers
CODEBOOK_KEY = "encoder_model.quantizer.codebook.embed"


def model_identity(model_dir: str | os.PathLike) -> dict[str, str]:
    """What identifies a codec directory's codes: `model_sha256` over its config and weights (what made the codes:
    another encoder gives other codes), and `codebook_fingerprint` (what the codes mean: the codes files' and
    `Codec.fingerprint`'s hash, which decoders and loaders compare)."""
    from safetensors import SafetensorError, safe_open

    from .convert import codebook_fingerprint

    directory = Path(model_dir)
    config, weights = directory / "config.json", directory / "model.safetensors"
    for path in (config, weights):
        if not path.is_file():
            raise WavTokenizerError(f"{directory} is not a codec directory: {path.name} is missing")
    digest = hashlib.sha256(config.read_bytes())
    with open(weights, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    try:
        with safe_open(weights, framework="pt") as handle:
            if CODEBOOK_KEY not in handle.keys():
                raise WavTokenizerError(f"{weights} has no {CODEBOOK_KEY}: not a WavTokenizer codec")
            fingerprint = codebook_fingerprint(handle.get_tensor(CODEBOOK_KEY))
    except SafetensorError as err:
        raise WavTokenizerError(f"{weights}: not a readable safetensors file ({err})") from None
    return {"model_sha256": digest.hexdigest(), "codebook_fingerprint": fingerprint}


class DatasetTokenizer:
    """Picklable `datasets.map` callable; the codec loads lazily once per process (rank r uses GPU r if any).

    Its state is the model's identity (a hash of its config and weights, `model_identity`), its resolved path and
    the options (no process id): `datasets` fingerprints a map with it the same way in every process, a repeated
    `ds.map` finds its cache, and a model replaced in the same folder (`wavtokenizer init --overwrite`, a fine-tuned
    codec copied over it) makes a new fingerprint instead of returning the old model's codes. Each output row
    carries the codebook fingerprint (`codec_fingerprint`) that loaders check."""

    def __init__(self, model_dir: str | os.PathLike, audio_column: str = "audio", sampling_rate: int | None = None,
                 max_batch_samples: int = 24000 * 600, device: str | None = None, precision: str = "fp32",
                 on_error: str = "raise", long_audio: str | None = None):
        """`on_error`: "raise" stops the map at a bad row; "record" gives that row empty codes and its reason in an
        `error` column (None for good rows), so a multi-hour map is not lost to one file. `long_audio`, needed with
        a precision other than fp32 (which applies to items up to 60 s only): "fp32" encodes longer items exactly in
        fp32 chunks, "error" stops at the first one; asked here rather than hours into a map."""
        from .inference import PRECISIONS
        from .long_audio import STREAMING_THRESHOLD_SECONDS

        if on_error not in ("raise", "record"):
            raise WavTokenizerError(f"on_error={on_error!r}; accepted: 'raise', 'record'")
        self.on_error = on_error
        if precision not in PRECISIONS:
            raise WavTokenizerError(f"precision {precision!r}; accepted: {', '.join(PRECISIONS)} (fp32 is exact; "
                                    "see BENCHMARKS.md for the others' code agreement)")
        if long_audio not in (None, "fp32", "error"):
            raise WavTokenizerError(f"long_audio={long_audio!r}; accepted: 'fp32', 'error'")
        if precision != "fp32" and long_audio is None:
            raise WavTokenizerError(
                f"precision {precision!r} applies to items up to {STREAMING_THRESHOLD_SECONDS:g} s; say what to do "
                "with longer ones: long_audio='fp32' (encode them exactly in fp32 chunks) or long_audio='error'")
        self.long_audio = long_audio
        self.precision = precision
        self.model_dir = str(Path(model_dir).resolve())
        self.identity = model_identity(self.model_dir)
        self.audio_column = audio_column
        self.sampling_rate = sampling_rate
        self.max_batch_samples = max_batch_samples
        self.device = device
        self._loaded: tuple[int, Any] | None = None

    def _fast(self, rank: int | None):
        if self._loaded is None or self._loaded[0] != os.getpid():
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging

            from .inference import FastWavTokenizer

            hf_logging.disable_progress_bar()
            if os.getpid() != _MAIN_PID:
                # a forked map worker: one thread each (OpenMP's pool does not survive fork; N workers share cores)
                torch.set_num_threads(1)
            device = self.device
            if device is None:
                device = f"cuda:{(rank or 0) % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
            if device.startswith("cuda") and torch.cuda._is_in_bad_fork():
                raise WavTokenizerError(
                    "this datasets.map worker was forked after the main process had started CUDA, and a forked "
                    "process cannot use it: on one GPU call map with num_proc=None; on several, start no CUDA work "
                    "in the main process before map (or tokenize on the CPU with device='cpu')")
            if model_identity(self.model_dir) != self.identity:
                raise WavTokenizerError(f"the model in {self.model_dir} changed after this tokenizer was made; make "
                                        "a new DatasetTokenizer (its codes would not be the ones it promised)")
            model = AutoModel.from_pretrained(self.model_dir).to(device)
            self._loaded = (os.getpid(), FastWavTokenizer(model))
        return self._loaded[1]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_loaded"] = None  # each worker loads its own copy
        return state

    def _config(self) -> dict:
        return json.loads((Path(self.model_dir) / "config.json").read_text())

    @property
    def codebook_size(self) -> int:
        return int(self._config()["codebook_size"])

    @property
    def model_rate(self) -> int:
        return int(self._config()["sampling_rate"])

    @property
    def frame_rate(self) -> float:
        config = self._config()
        return config["sampling_rate"] / int(np.prod(config["upsampling_ratios"]))

    def encode_waveforms(self, waveforms: list[torch.Tensor], rank: int | None = None) -> list[np.ndarray]:
        """Encode mono waveforms at the model's rate; sorted by length, in batches of bounded total samples."""
        from .long_audio import STREAMING_THRESHOLD_SECONDS, StreamingEncoder

        fast = self._fast(rank)
        dtype = np.int16 if fast.config.codebook_size <= 2**15 else np.int32
        out: list[np.ndarray | None] = [None] * len(waveforms)
        long_ones = {i for i, w in enumerate(waveforms) if w.numel() > STREAMING_THRESHOLD_SECONDS * fast.config.sampling_rate}
        if long_ones and self.precision != "fp32" and self.long_audio == "error":
            raise WavTokenizerError(f"audio longer than {STREAMING_THRESHOLD_SECONDS:g} s is encoded exactly in fp32 "
                                    f"chunks; precision {self.precision!r} is for shorter items (long_audio='error')")
        for i in long_ones:  # chunk by chunk, LSTM state carried: the whole-file codes in bounded memory
            out[i] = StreamingEncoder(fast).encode(waveforms[i]).numpy().astype(dtype)
        order = sorted((i for i in range(len(waveforms)) if i not in long_ones), key=lambda i: waveforms[i].numel())
        limit = self.max_batch_samples
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and waveforms[order[end]].numel() * (end - start + 1) <= limit:
                end += 1
            group = order[start:end]
            codes = fast.encode_list([waveforms[i] for i in group], self.precision)
            for i, c in zip(group, codes):
                out[i] = c.numpy().astype(dtype)
            start = end
        return out  # type: ignore[return-value]

    def waveform(self, value: Any, sampling_rate: int | None = None, what: str = "audio") -> torch.Tensor:
        """One audio value decoded, checked (empty, NaN/Inf, shorter than two frames: clear errors, as
        `Codec.prepare` gives them) and resampled to the model's rate."""
        from .codec import check_min_length

        config = self._config()
        try:
            data, source_rate = decode_audio_value(value, sampling_rate or self.sampling_rate)
        except WavTokenizerError as err:
            raise WavTokenizerError(f"{what}: {err}") from None
        except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
            raise WavTokenizerError(f"{what}: not readable audio ({str(err).strip() or type(err).__name__})") from None
        wave = torch.from_numpy(data)
        validate_waveform(wave, what)
        target = config["sampling_rate"]
        wave = resample(wave[None], source_rate, target)[0] if source_rate != target else wave
        check_min_length(wave.numel(), int(np.prod(config["upsampling_ratios"])), target, what)
        return wave

    def __call__(self, batch: dict[str, list], rank: int | None = None) -> dict[str, list]:
        fast = self._fast(rank)
        target = fast.config.sampling_rate
        rates = batch.get("sampling_rate") or [self.sampling_rate] * len(batch[self.audio_column])
        ids = batch.get("id") or [f"row {i} of the batch" for i in range(len(rates))]
        waveforms: list[torch.Tensor | None] = []
        errors: list[str | None] = []
        for value, rate, what in zip(batch[self.audio_column], rates, ids):
            try:
                waveforms.append(self.waveform(value, rate, str(what)))
                errors.append(None)
            except WavTokenizerError as err:
                if self.on_error == "raise":
                    raise
                waveforms.append(None)
                errors.append(str(err))
        good = [i for i, w in enumerate(waveforms) if w is not None]
        encoded = self.encode_waveforms([waveforms[i] for i in good], rank) if good else []
        empty = np.zeros(0, dtype=np.int16 if fast.config.codebook_size <= 2**15 else np.int32)
        codes = [empty] * len(waveforms)
        for i, c in zip(good, encoded):
            codes[i] = c
        frame_rate = target / fast.hop_length
        out = {"audio_codes": codes, "num_frames": [len(c) for c in codes],
               "frame_rate": [frame_rate] * len(codes),
               "audio_seconds": [w.numel() / target if w is not None else 0.0 for w in waveforms],
               "codec_fingerprint": [self.identity["codebook_fingerprint"]] * len(codes)}
        if self.on_error == "record":
            out["error"] = errors
        return out


# --- the sharded, resumable job --------------------------------------------------------------------------------

def list_inputs(source: str | os.PathLike, split: str = "train",
                audio_column: str = "audio") -> tuple[list[str], list[Any]]:
    """(ids, audio values) of an audio folder, a saved dataset (one split; audio in `audio_column`) or a JSONL
    manifest, in a fixed order."""
    source = Path(source)
    if not source.exists():
        raise WavTokenizerError(f"input not found: {source}")
    if is_saved_dataset(source):
        from datasets import Audio

        dataset = load_split(source, split)
        if audio_column not in dataset.column_names:
            raise WavTokenizerError(f"{source} has no column {audio_column!r} (columns: {dataset.column_names}); "
                                    "name the audio column with --audio-column")
        if isinstance(dataset.features.get(audio_column), Audio):
            dataset = dataset.cast_column(audio_column, Audio(decode=False))
        ids = dataset["id"] if "id" in dataset.column_names else [str(i) for i in range(len(dataset))]
        return list(ids), dataset[audio_column]
    if source.suffix == ".jsonl":
        entries = manifest_entries(source)
        return [id_ for id_, _ in entries], [str(audio) for _, audio in entries]
    files = audio_files(source)
    return [str(p.relative_to(source)) for p in files], [str(p) for p in files]


def shard_range(total: int, num_shards: int, shard_index: int) -> range:
    """Contiguous, deterministic slice of `total` items for one shard."""
    if not 0 <= shard_index < num_shards:
        raise WavTokenizerError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    per = -(-total // num_shards)
    return range(min(total, shard_index * per), min(total, (shard_index + 1) * per))


def shard_dir(out_dir: Path, num_shards: int, shard_index: int) -> Path:
    return out_dir / f"shard-{shard_index:05d}-of-{num_shards:05d}"


PLAN = "_PLAN.json"
COMPLETE = "_COMPLETE.json"


def shard_plan(ids: list[str], items: range, rows_per_part: int, num_shards: int, shard_index: int,
               model_dir) -> dict:
    """What a shard is made of: a rerun must find the same plan, or its finished parts would not fit."""
    digest = hashlib.sha256("\n".join(ids[i] for i in items).encode()).hexdigest()
    return {"num_shards": num_shards, "shard_index": shard_index, "items": len(items), "rows_per_part": rows_per_part,
            "input_fingerprint": digest, "model": str(Path(model_dir).resolve()), **model_identity(model_dir)}


def codes_table(rows: dict[str, list], wide: bool | None = None, identity: dict[str, str] | None = None):
    """A parquet table of one part; the codes column is int32 for codebooks above 32,768 entries (`wide`; by
    default read off the codes' dtype), int16 otherwise, so every part of a shard has one schema. `identity`
    (`model_identity`) goes into the schema's metadata, where loaders read which codebook the codes are of."""
    import pyarrow as pa

    if wide is None:
        wide = any(np.asarray(c).dtype.itemsize > 2 for c in rows["audio_codes"])
    metadata = {f"wavtokenizer_{k}".encode(): v.encode() for k, v in (identity or {}).items()} or None
    return pa.table({
        "id": pa.array(rows["id"], pa.string()),
        "audio_codes": pa.array([np.asarray(c).tolist() for c in rows["audio_codes"]],
                                pa.list_(pa.int32() if wide else pa.int16())),
        "num_frames": pa.array(rows["num_frames"], pa.int32()),
        "frame_rate": pa.array(rows["frame_rate"], pa.float32()),
    }, metadata=metadata)


def tokenize_shard(source: str | os.PathLike, out_dir: str | os.PathLike, model_dir: str | os.PathLike,
                   num_shards: int = 1, shard_index: int = 0, rows_per_part: int = 256, split: str = "train",
                   batch_size: int = 32, skip_errors: bool = False, audio_column: str = "audio") -> dict:
    """Tokenize one shard into parquet parts; parts already written (atomically) are skipped on a rerun, which must
    see the same input ids, `rows_per_part` and model (else a clear error). A second process on the same shard is
    refused while the first runs. With `skip_errors`, unreadable or invalid audio is skipped and listed in
    `_COMPLETE.json` (`skipped`: id and reason) instead of stopping the shard."""
    out_dir = Path(out_dir)
    ids, values = list_inputs(source, split, audio_column)
    items = shard_range(len(ids), num_shards, shard_index)
    directory = shard_dir(out_dir, num_shards, shard_index)
    with OutputLock(directory, "tokenizer for this shard"):
        plan = shard_plan(ids, items, rows_per_part, num_shards, shard_index, model_dir)
        ensure_plan(directory, plan)
        return _tokenize_shard_parts(ids, values, items, directory, model_dir, plan, batch_size, skip_errors)


def ensure_plan(directory: Path, plan: dict) -> None:
    """Record `plan` in a new shard folder, or check that a started one was planned the same way (a rerun of the
    same job continues it; another job's folder is refused)."""
    plan_path = directory / PLAN
    if plan_path.exists():
        earlier = json.loads(plan_path.read_text())
        changed = [k for k in plan if earlier.get(k) != plan[k]]
        if changed:
            raise WavTokenizerError(f"{directory} was started with other {', '.join(changed)}; its parts would "
                                    "not fit this run: remove the folder or write to another output")
    else:
        with atomic_path(plan_path) as tmp:
            tmp.write_text(json.dumps(plan, indent=2))


def part_path(directory: Path, number: int) -> Path:
    return directory / f"part-{number:05d}.parquet"


def write_part(directory: Path, number: int, rows: dict[str, list], skipped: list[dict], wide: bool,
               identity: dict[str, str]) -> None:
    """One part, atomically, its skipped files recorded first (a part that exists is finished, skips included)."""
    import pyarrow.parquet as pq

    with atomic_path(directory / f".part-{number:05d}.skipped.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(skipped))
    with atomic_path(part_path(directory, number)) as tmp:
        pq.write_table(codes_table(rows, wide=wide, identity=identity), tmp)


def write_complete(directory: Path, plan: dict, parts: int, frame_rate: float) -> list[dict]:
    """The shard's `_COMPLETE.json` once all its parts exist; returns every skipped file."""
    all_skipped = []
    for number in range(parts):
        record = directory / f".part-{number:05d}.skipped.json"
        if record.exists():
            all_skipped += json.loads(record.read_text())
    manifest = {**plan, "parts": parts, "rows": plan["items"] - len(all_skipped), "skipped": all_skipped,
                "frame_rate": frame_rate}
    with atomic_path(directory / COMPLETE, overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return all_skipped


def _tokenize_shard_parts(ids, values, items, directory: Path, model_dir, plan: dict, batch_size: int,
                          skip_errors: bool) -> dict:
    tokenizer = DatasetTokenizer(model_dir)
    if tokenizer.identity["model_sha256"] != plan["model_sha256"]:
        raise WavTokenizerError(f"the model in {model_dir} changed while this shard was planned; rerun")
    rows_per_part = plan["rows_per_part"]
    parts = [items[i:i + rows_per_part] for i in range(0, len(items), rows_per_part)]
    done = skipped_parts = 0
    skipped: list[dict] = []
    audio_seconds = 0.0
    start = time.perf_counter()
    progress = tqdm(total=len(items), desc=f"shard {plan['shard_index']}/{plan['num_shards']}", unit="file")
    for number, part in enumerate(parts):
        if part_path(directory, number).exists():
            progress.update(len(part))
            skipped_parts += 1
            continue
        rows: dict[str, list] = {"id": [], "audio_codes": [], "num_frames": [], "frame_rate": []}
        for chunk in (part[i:i + batch_size] for i in range(0, len(part), batch_size)):
            kept, waveforms = [], []
            for i in chunk:
                try:
                    waveforms.append(tokenizer.waveform(values[i], what=ids[i]))
                    kept.append(i)
                except WavTokenizerError as err:
                    if not skip_errors:
                        raise WavTokenizerError(f"{err} (pass --skip-errors to skip such files and list them)") from None
                    skipped.append({"id": ids[i], "reason": str(err)})
            codes = tokenizer.encode_waveforms(waveforms) if waveforms else []
            frame_rate = tokenizer.frame_rate
            rows["id"] += [ids[i] for i in kept]
            rows["audio_codes"] += codes
            rows["num_frames"] += [len(c) for c in codes]
            rows["frame_rate"] += [frame_rate] * len(codes)
            audio_seconds += sum(w.numel() for w in waveforms) / tokenizer.model_rate
            progress.update(len(chunk))
            hours_per_second = audio_seconds / 3600 / max(time.perf_counter() - start, 1e-9)
            progress.set_postfix(audio_h_per_s=f"{hours_per_second:.4f}")
        part_ids = {ids[i] for i in part}
        write_part(directory, number, rows, [s for s in skipped if s["id"] in part_ids],
                   tokenizer.codebook_size > 2**15, tokenizer.identity)
        done += 1
    progress.close()
    all_skipped = write_complete(directory, plan, len(parts), tokenizer.frame_rate)
    return {"parts_written": done, "parts_skipped": skipped_parts, "files_skipped": len(all_skipped),
            "audio_seconds": round(audio_seconds, 2), "seconds": round(time.perf_counter() - start, 2)}


def part_identity(path: str | os.PathLike) -> dict[str, str]:
    """The model identity a parquet part carries in its schema metadata ({} for parts written without it)."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    prefix = b"wavtokenizer_"
    return {k[len(prefix):].decode(): v.decode() for k, v in metadata.items() if k.startswith(prefix)}


def check_output(out_dir: str | os.PathLike, num_shards: int) -> dict:
    """Verify that every shard is present and complete (all parts written, row counts as planned) and that every
    part of every shard was made by one model (its identity in `_COMPLETE.json` and in each part's metadata)."""
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    problems, rows, models = [], 0, set()
    for index in range(num_shards):
        directory = shard_dir(out_dir, num_shards, index)
        marker = directory / COMPLETE
        if not marker.exists():
            problems.append(f"shard {index}: not complete ({directory} has no {COMPLETE})")
            continue
        manifest = json.loads(marker.read_text())
        files = sorted(directory.glob("part-*.parquet"))
        if len(files) != manifest["parts"]:
            problems.append(f"shard {index}: {len(files)} of {manifest['parts']} parts")
        count = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        expected = manifest.get("rows", manifest["items"])
        if count != expected:
            problems.append(f"shard {index}: {count} rows, expected {expected}")
        models.add(manifest.get("model_sha256"))
        for f in files:
            if part_identity(f).get("model_sha256") != manifest.get("model_sha256"):
                problems.append(f"shard {index}: {f.name} was made by another model than the shard's "
                                f"({part_identity(f).get('model_sha256', 'none recorded')})")
        rows += count
    if len(models) > 1:
        problems.append(f"the shards were made by {len(models)} different models")
    return {"ok": not problems, "rows": rows, "problems": problems}
