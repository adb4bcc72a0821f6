"""Test sets for the codec evaluation: utterances with their text, speaker and source, from a saved corpus split or a
folder of audio files, with every transcript that could not be matched said out loud."""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..audio_io import read_audio, resample
from ..errors import WavTokenizerError
from ..listing import audio_files, read_jsonl
from ..saved_dataset import is_saved_dataset, load_split, read_audio_column

EVAL_RATE = 24000
LOSSY_SUFFIXES = (".mp3", ".ogg", ".opus", ".m4a", ".aac")
SAME_RECORDING_SECONDS = 0.1  # two files this close in length are compared as possible encodings of one recording
SAME_RECORDING_CORRELATION = 0.95  # of their log-mel envelopes: the same reading, not two readings of one text


@dataclass
class Utterance:
    id: str
    waveform: torch.Tensor  # 1-D, EVAL_RATE
    text: str | None = None
    kind: str = "speech"  # speech, or the corpus's music / noise kinds: scored with the spectral distances only
    speaker: str | None = None  # a corpus row's voice, a manifest's voice, or the subfolder a file is in
    source: str | None = None  # the synthesis engine or subfolder: a coarser grouping than the speaker

    @property
    def group(self) -> str:
        """What the paired bootstrap resamples first: the speaker, else the source, else the utterance itself."""
        return self.speaker or self.source or self.id

    def audio_sha256(self) -> str:
        return hashlib.sha256(self.waveform.float().contiguous().numpy().tobytes()).hexdigest()

    def text_sha256(self) -> str | None:
        return hashlib.sha256(self.text.encode()).hexdigest() if self.text is not None else None


class TestSet(list):
    """A list of `Utterance`s that also keeps what loading it found wrong (`notes`): transcript lines that match no
    file, audio without text, one recording present twice."""

    __test__ = False  # not a pytest class

    def __init__(self, utterances=(), notes: list[str] | None = None, source: str = ""):
        super().__init__(utterances)
        self.notes = notes or []
        self.source = source

    def transcript_line(self) -> str:
        """"N of M utterances have a transcript (W words)", speech rows only."""
        from ..corpus.text import normalize_words

        speech = [u for u in self if u.kind == "speech"]
        texts = [u.text for u in speech if u.text]
        words = sum(len(normalize_words(t)) for t in texts)
        return f"{len(texts)} of {len(speech)} utterances have a transcript ({words} words)"


def speaker_and_source(row: dict) -> tuple[str | None, str | None]:
    """(speaker, source): the person (one speaker may have voices in several backends) and the backend, where the
    corpus names them; a corpus of an older build names only the voice and the source."""
    return row.get("speaker") or row.get("voice") or None, row.get("backend") or row.get("source") or None


def _from_corpus(source: Path, split: str, limit: int | None, speech_only: bool, offset: int = 0) -> TestSet:
    """The split's rows in order; with `limit`, taken in turn from each speaker (and within a speaker from each
    backend), so a few dozen items of a split stored speaker by speaker still cover every speaker; `offset` skips
    the first items of that order (a confirmation set disjoint from an earlier `limit`)."""
    utterances = TestSet(source=f"{source} ({split})")
    rows = load_split(source, split)
    columns = rows.remove_columns([c for c in ("audio",) if c in rows.column_names])
    kinds = columns["kind"] if "kind" in columns.column_names else ["speech"] * len(columns)
    indices = [i for i in range(len(rows)) if not speech_only or kinds[i] == "speech"]
    if limit or offset:
        order = speaker_turns(indices, [speaker_and_source(r) for r in columns])[offset:]
        indices = sorted(order[:limit] if limit else order)
    for index in indices:
        row = rows[index]
        audio, rate = read_audio_column(row)
        wave = resample(torch.from_numpy(audio)[None], rate, EVAL_RATE)[0]
        speaker, engine = speaker_and_source(row)
        utterances.append(Utterance(row["id"], wave, row.get("text") or None, row.get("kind", "speech"), speaker,
                                    engine))
    return utterances


def speaker_turns(indices: list[int], groups: list[tuple]) -> list[int]:
    """`indices` reordered one speaker after another (round robin; within a speaker one backend after another),
    keeping their order within each (speaker, backend); `groups[i]` is row i's (speaker, backend)."""
    by_speaker: dict = {}
    for index in indices:
        speaker, engine = groups[index]
        by_speaker.setdefault(speaker, {}).setdefault(engine, []).append(index)
    queues = {speaker: [i for batch in _interleaved(list(engines.values())) for i in batch]
              for speaker, engines in by_speaker.items()}
    return [i for batch in _interleaved(list(queues.values())) for i in batch]


def _interleaved(lists: list[list[int]]) -> list[list[int]]:
    """[[a0, b0, c0], [a1, b1], ...]: the first of each list, then the second of each, ..."""
    longest = max((len(x) for x in lists), default=0)
    return [[x[k] for x in lists if k < len(x)] for k in range(longest)]


def _tsv_lines(source: Path) -> dict[Path, tuple[str, str]]:
    """Every `transcripts.tsv` line below `source`: the path it names (relative to the tsv's folder, with or
    without its extension) -> (where the line is, text)."""
    lines: dict[Path, tuple[str, str]] = {}
    for tsv in sorted(source.rglob("transcripts.tsv")):
        with open(tsv, newline="") as handle:
            for number, fields in enumerate(csv.reader(handle, delimiter="\t"), start=1):
                if len(fields) >= 2 and fields[0].strip():
                    lines[(tsv.parent / fields[0].strip()).resolve()] = (f"{tsv}:{number}", fields[1])
    return lines


def _manifest_entries(source: Path) -> dict[tuple[Path, str], dict]:
    """`manifest.jsonl` lines with an `id` (a file's stem), as in the shared tts_samples: text, voice, engine; keyed
    by (the manifest's folder, id), since two manifests may reuse an id."""
    entries: dict[tuple[Path, str], dict] = {}
    for manifest in sorted(source.rglob("manifest.jsonl")):
        for entry in read_jsonl(manifest):
            if "id" in entry:
                entries[(manifest.parent.resolve(), str(entry["id"]))] = entry
    return entries


def _manifest_key(path: Path, source: Path, manifest: dict) -> tuple[Path, str] | None:
    """The entry of the nearest manifest, from the file's folder up to the test set's, whose id is the file's stem."""
    top = source.resolve() if source.is_dir() else path.parent.resolve()
    folder = path.parent.resolve()
    while True:
        if (folder, path.stem) in manifest:
            return folder, path.stem
        if folder == top or folder.parent == folder:
            return None
        folder = folder.parent


_MEL = None


def _envelope(waveform: torch.Tensor) -> torch.Tensor:
    """Log-mel frames at 16 kHz (10 ms hop): what two encodings of one recording share, whatever their codecs."""
    global _MEL
    if _MEL is None:
        import torchaudio

        _MEL = torchaudio.transforms.MelSpectrogram(16000, n_fft=512, hop_length=160, n_mels=40)
    return _MEL(resample(waveform[None], EVAL_RATE, 16000)[0]).clamp(min=1e-8).log()


def same_recording(a: torch.Tensor, b: torch.Tensor, envelopes: dict | None = None) -> bool:
    """Whether two waveforms are one recording in two encodings (rates, lossy codecs): equal length within
    `SAME_RECORDING_SECONDS` and log-mel envelopes correlated above `SAME_RECORDING_CORRELATION`. `envelopes`: a
    cache keyed by the tensors' ids."""
    if abs(a.numel() - b.numel()) > SAME_RECORDING_SECONDS * EVAL_RATE:
        return False
    cache = envelopes if envelopes is not None else {}
    x, y = (cache.setdefault(id(w), _envelope(w)) if id(w) not in cache else cache[id(w)] for w in (a, b))
    n = min(x.shape[-1], y.shape[-1])
    x, y = x[:, :n].flatten(), y[:, :n].flatten()
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()).clamp(min=1e-12)) > SAME_RECORDING_CORRELATION


def _from_folder(source: Path, limit: int | None) -> TestSet:
    lines = _tsv_lines(source)
    manifest = _manifest_entries(source)
    used: set[Path] = set()
    notes: list[str] = []
    files = audio_files(source) if source.is_dir() else [source]
    # lossless before lossy: of one recording in two encodings, the lossless one is kept
    files = sorted(files, key=lambda p: (str(p.parent), p.suffix.lower() in LOSSY_SUFFIXES, p.name))
    utterances = TestSet(source=str(source))
    envelopes: dict[int, torch.Tensor] = {}  # keyed by id() of the kept utterances' waveforms, which stay alive
    used_entries: set[tuple[Path, str]] = set()
    for path in files:
        waveform, rate = read_audio(path)
        wave = resample(waveform.mean(0, keepdim=True), rate, EVAL_RATE)[0]
        uid = str(path.relative_to(source) if source.is_dir() else path.name)
        text, where = None, None
        for key in (path.resolve(), path.with_suffix("").resolve()):
            if key in lines:
                where, text = lines[key]
                used.add(key)
                break
        twin = next((u for u in utterances if Path(u.id).parent == Path(uid).parent and same_recording(u.waveform, wave, envelopes)),
                    None)
        if twin is not None:
            envelopes.pop(id(wave), None)  # a dropped waveform's id may be reused by the next file's
            notes.append(f"{uid} is the same recording as {twin.id}: counted once")
            if twin.text is None and text:  # the line named the copy that was dropped
                twin.text = text
            continue
        text_file = path.with_suffix(".txt")
        found = _manifest_key(path, source, manifest)
        entry = manifest[found] if found else {}
        if found:
            used_entries.add(found)
        if text is None and text_file.exists():
            text = text_file.read_text().strip()
        if text is None and entry.get("text"):
            text = entry["text"]
        sub = Path(uid).parts[0] if len(Path(uid).parts) > 1 else None
        voice = entry.get("voice")
        speaker = voice.split()[0] if voice else sub  # "en-us+m6 rate=171 pitch=59": the voice, not its settings
        utterances.append(Utterance(uid, wave, text or None, "speech", speaker, entry.get("engine") or sub))
        if limit and len(utterances) >= limit:
            break
    if not utterances:
        raise WavTokenizerError(f"no audio found in {source}")
    if not limit:
        notes += [f"{where}: transcript of {key.relative_to(source.resolve()) if source.is_dir() else key.name} "
                  f"matches no audio file" for key, (where, _) in lines.items() if key not in used]
        notes += [f"{folder / 'manifest.jsonl'}: entry {uid} matches no audio file" for folder, uid in manifest
                  if (folder, uid) not in used_entries]
    without = [u.id for u in utterances if not u.text]
    if without:
        shown = ", ".join(without[:5]) + (f" and {len(without) - 5} more" if len(without) > 5 else "")
        notes.append(f"{len(without)} audio file(s) have no transcript: {shown}")
    utterances.notes = notes
    return utterances


def load_test_set(source: str | Path, split: str = "test", limit: int | None = None,
                  speech_only: bool = False, quiet: bool = False, offset: int = 0) -> TestSet:
    """Utterances from a saved `datasets` corpus (one split) or a folder of audio files with optional transcripts:
    `NAME.txt` beside `NAME.wav`, `transcripts.tsv` lines `file<TAB>text` (the file named with or without its
    extension, relative to the tsv's folder), or a `manifest.jsonl` with `id` (the file's stem), `text` and
    `voice`. A file's speaker is its manifest voice or its subfolder. Two files of one folder that are the same
    recording in two encodings count once. Transcript lines that match no file and files without text are listed
    in `notes` and printed (unless `quiet`). A corpus's rows are taken speaker by speaker in turn when `limit` or
    `offset` is given (`offset`: skip that many first, e.g. those an earlier `limit` chose)."""
    source = Path(source)
    if not source.exists():
        raise WavTokenizerError(f"test set not found: {source}")
    if offset and not is_saved_dataset(source):
        raise WavTokenizerError("offset applies to a saved corpus's speaker-by-speaker order, not to a folder")
    utterances = (_from_corpus(source, split, limit, speech_only, offset) if is_saved_dataset(source)
                  else _from_folder(source, limit))
    if not quiet:
        for note in utterances.notes:
            print(f"test set: {note}", file=sys.stderr)
    return utterances
