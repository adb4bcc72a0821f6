"""Reading the package's line-delimited files and listing audio inputs: one copy for training, tokenization,
evaluation, curves and the scripts."""

from __future__ import annotations

import json
from pathlib import Path

from .audio_io import is_audio_path
from .errors import WavTokenizerError

MANIFEST_PATH_KEYS = ("audio_filepath", "path", "audio")  # NeMo-style manifests first


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file (`log.jsonl`, `train_log.jsonl`, manifests); blank lines are skipped, a
    malformed line is an error that names the file and line."""
    path = Path(path)
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise WavTokenizerError(f"{path}:{number}: not a JSON line ({err.msg})") from None
    return records


def manifest_entries(path: str | Path) -> list[tuple[str, Path]]:
    """(id, audio path) of each line of an audio manifest (`.jsonl` with one of `MANIFEST_PATH_KEYS`, optional
    `id`); relative paths are taken from the manifest's folder; the id defaults to the path as written."""
    path = Path(path)
    entries = []
    for number, entry in enumerate(read_jsonl(path), start=1):
        written = next((entry[key] for key in MANIFEST_PATH_KEYS if entry.get(key)), None)
        if written is None:
            raise WavTokenizerError(f"{path}: entry {number} has none of {', '.join(MANIFEST_PATH_KEYS)}")
        audio = Path(written)
        audio = audio if audio.is_absolute() else path.parent / audio
        entries.append((str(entry.get("id", audio)), audio))
    return entries


def audio_files(folder: str | Path) -> list[Path]:
    """Audio files below `folder`, recursively, in a fixed (sorted) order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_audio_path(p))


def or_na(value: float | None, fmt: str = "{:.3f}") -> str:
    """`fmt.format(value)`, or "n/a" for a missing value."""
    return "n/a" if value is None else fmt.format(value)
