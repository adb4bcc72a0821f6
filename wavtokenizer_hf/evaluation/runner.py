"""Evaluate one or more codecs (and the identity "codec") on a test set; JSON plus a side-by-side markdown table."""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_path
from ..audio_io import read_audio, resample
from ..codec import Codec
from ..saved_dataset import is_saved_dataset, load_split, read_audio_column
from ..codebook import codebook_usage
from ..errors import WavTokenizerError
from ..listing import audio_files, or_na, read_jsonl
from . import asr, quality
from .paired import paired_table
from .pitch import PITCH_KEYS, pitch_agreement
from .spectral import mel_distance, multi_resolution_stft_distance, phase_advance_error

EVAL_RATE = 24000


@dataclass
class Utterance:
    id: str
    waveform: torch.Tensor  # 1-D, EVAL_RATE
    text: str | None = None
    kind: str = "speech"  # speech, or the corpus's music / noise kinds: scored with the spectral distances only


class Reconstructor(Protocol):
    name: str
    bits_per_second: float | None
    codebook_size: int | None

    def reconstruct(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class Identity:
    """The original audio as its own "reconstruction": the ceiling every metric should reach."""

    name = "identity"
    bits_per_second = None
    codebook_size = None

    def reconstruct(self, waveform: torch.Tensor) -> tuple[torch.Tensor, None]:
        return waveform, None


class CodecReconstructor:
    def __init__(self, codec: Codec | str | Path, device: str = "cpu", name: str | None = None):
        """A codec directory, or a loaded `Codec` (e.g. a model being trained)."""
        self.codec = codec if isinstance(codec, Codec) else Codec.from_pretrained(codec, device=device)
        self.name = name or (self.codec.name if isinstance(codec, Codec) else Path(codec).name)
        self.codebook_size = self.codec.codebook_size
        self.bits_per_second = self.codec.frame_rate * math.log2(self.codebook_size)

    def reconstruct(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.codec.encode(waveform, EVAL_RATE)
        audio = resample(self.codec.decode(codes), self.codec.sampling_rate, EVAL_RATE)[0]
        return audio, codes.audio_codes[0]


class LatentReconstructor:
    """A codec with its quantiser bypassed: the encoder's continuous latents go straight to the decoder. Its scores
    bound what any codebook could give this encoder and decoder, which tells a codebook problem from a decoder one."""

    bits_per_second = None
    codebook_size = None

    def __init__(self, codec: Codec | str | Path, device: str = "cpu", name: str | None = None):
        self.codec = codec if isinstance(codec, Codec) else Codec.from_pretrained(codec, device=device)
        base = self.codec.name if isinstance(codec, Codec) else Path(codec).name
        self.name = name or f"{base} without VQ"

    @torch.inference_mode()
    def reconstruct(self, waveform: torch.Tensor) -> tuple[torch.Tensor, None]:
        model = self.codec.model
        audio = self.codec.prepare(waveform, EVAL_RATE).to(self.codec.device)
        latents = model.encoder_model.encoder(audio.unsqueeze(1))
        bandwidth_id = torch.zeros(1, dtype=torch.long, device=latents.device)  # as the stock decode's default
        decoded = model.head(model.backbone(latents, bandwidth_id))[:, 0, : audio.shape[-1]].float().cpu()
        return resample(decoded, self.codec.sampling_rate, EVAL_RATE)[0], None


def load_test_set(source: str | Path, split: str = "test", limit: int | None = None,
                  speech_only: bool = False) -> list[Utterance]:
    """Utterances from a saved `datasets` corpus (one split) or a folder of audio files with optional transcripts
    (`NAME.txt` beside `NAME.wav`, a `transcripts.tsv` of `file<TAB>text` lines, or a `manifest.jsonl` with `id`
    (the file's stem) and `text`)."""
    source = Path(source)
    if not source.exists():
        raise WavTokenizerError(f"test set not found: {source}")
    utterances: list[Utterance] = []
    if is_saved_dataset(source):
        for row in load_split(source, split):
            if speech_only and row.get("kind", "speech") != "speech":
                continue
            audio, rate = read_audio_column(row)
            wave = resample(torch.from_numpy(audio)[None], rate, EVAL_RATE)[0]
            utterances.append(Utterance(row["id"], wave, row.get("text") or None, row.get("kind", "speech")))
            if limit and len(utterances) >= limit:
                break
        return utterances
    transcripts: dict[str, str] = {}
    for tsv in source.rglob("transcripts.tsv"):
        with open(tsv, newline="") as handle:
            for fields in csv.reader(handle, delimiter="\t"):
                if len(fields) >= 2:
                    transcripts[str((tsv.parent / fields[0]).resolve())] = fields[1]
    by_stem: dict[str, str] = {}  # manifest.jsonl lines with "id" and "text" (as in the shared tts_samples)
    for manifest in source.rglob("manifest.jsonl"):
        for entry in read_jsonl(manifest):
            if "id" in entry and entry.get("text"):
                by_stem[str(entry["id"])] = entry["text"]
    files = audio_files(source) if source.is_dir() else [source]
    for path in files:
        waveform, rate = read_audio(path)
        wave = resample(waveform.mean(0, keepdim=True), rate, EVAL_RATE)[0]
        text_file = path.with_suffix(".txt")
        text = text_file.read_text().strip() if text_file.exists() else transcripts.get(str(path.resolve()),
                                                                                        by_stem.get(path.stem))
        utterances.append(Utterance(str(path.relative_to(source) if source.is_dir() else path.name), wave, text))
        if limit and len(utterances) >= limit:
            break
    if not utterances:
        raise WavTokenizerError(f"no audio found in {source}")
    return utterances


def unique_codec_names(paths: list[str | Path]) -> list[str]:
    """A distinct name per codec directory: the shortest path suffix that tells it from the others
    (`runs/a/final`, `runs/b/final` -> `a/final`, `b/final`). The same directory twice is refused."""
    resolved = [Path(p).resolve() for p in paths]
    seen: dict[Path, str] = {}
    for path, given in zip(resolved, paths):
        if path in seen:
            raise WavTokenizerError(f"codec {given} is given twice (same directory as {seen[path]})")
        seen[path] = str(given)
    for depth in range(1, max((len(p.parts) for p in resolved), default=1) + 1):
        names = ["/".join(p.parts[-depth:]) for p in resolved]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in resolved]


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(kept)) if kept else None


def _recognised(recognizer: asr.Recognizer, text: str, waveform: torch.Tensor) -> dict:
    hypothesis = recognizer.transcribe(waveform, EVAL_RATE)
    errors, words = asr.word_errors(text, hypothesis)
    char_errors, chars = asr.char_errors(text, hypothesis)
    return {"errors": errors, "words": words, "char_errors": char_errors, "chars": chars, "transcript": hypothesis}


SILENT_RMS = 1e-4  # -80 dBFS
MONOTONE_SPREAD = 0.2  # output F0 spread below a fifth of the reference's: a buzz at one pitch
UNRELATED_STOI = 0.2  # below this the output does not follow the reference's envelope over time
UNVOICED_SHARE = 0.02  # an output with (almost) no voiced frame where the reference speaks
FLAGS = ("silent", "unvoiced", "monotone", "unrelated", "no_speech_heard")


def degenerate_flags(estimate: torch.Tensor, row: dict, original_transcript: str | None) -> list[str]:
    """Why an output should not be trusted whatever its scores: silence, no voicing or one pitch for a speaking
    voice, audio unrelated to the reference over time (e.g. reversed), or no words heard where the original has
    some. No-reference scores (MOS) in particular can rate such outputs well."""
    flags = []
    if float(estimate.float().pow(2).mean().sqrt()) < SILENT_RMS:
        flags.append("silent")
    share, reference_share = row.get("voiced_share"), row.get("voiced_share_reference")
    if share is not None and not math.isnan(share) and reference_share > 5 * UNVOICED_SHARE and share < UNVOICED_SHARE:
        flags.append("unvoiced")
    spread = row.get("f0_spread_ratio")
    if spread is not None and not math.isnan(spread) and spread < MONOTONE_SPREAD:
        flags.append("monotone")
    if row.get("stoi") is not None and row["stoi"] < UNRELATED_STOI:
        flags.append("unrelated")
    if original_transcript and "transcript" in row and not row["transcript"].strip():
        flags.append("no_speech_heard")
    return flags


def _pooled(rows, errors: str, total: str, capped: bool = False) -> float | None:
    """Errors over reference units, pooled over utterances; `capped`: each utterance's errors count at most its
    reference length, so that one recogniser loop ("the army and the army and ...", hundreds of insertions) cannot
    outweigh every other utterance."""
    counted = sum(r.get(total, 0) for r in rows)
    count = (lambda r: min(r.get(errors, 0), r.get(total, 0))) if capped else (lambda r: r.get(errors, 0))
    return sum(count(r) for r in rows) / counted if counted else None


def evaluate(reconstructors: list[Reconstructor], utterances: list[Utterance], with_asr: bool = True,
             with_mos: bool = True, recognizer: str = "auto") -> dict:
    """Metrics per codec (means over utterances; WER and CER pooled over words and characters) plus the original
    audio's own scores. `recognizer`: auto (Whisper where installed, else pocketsphinx), whisper, pocketsphinx."""
    names = [rec.name for rec in reconstructors]
    if len(set(names)) != len(names):
        raise WavTokenizerError(f"two codecs share a name in {names}: each needs its own column")
    chosen = asr.recognizer(recognizer) if with_asr else None
    with_mos = with_mos and quality.has("distillmos")
    original: dict[str, dict] = {}
    for utt in tqdm(utterances, desc="original", unit="utt"):
        entry: dict = {}
        if chosen is not None and utt.text:
            entry.update(_recognised(chosen, utt.text, utt.waveform))
        if with_mos and utt.kind == "speech":
            entry["mos"] = quality.mos(utt.waveform, EVAL_RATE)
        original[utt.id] = entry
    results: dict = {"utterances": len(utterances), "seconds": round(sum(u.waveform.numel() for u in utterances)
                                                                      / EVAL_RATE, 2), "codecs": {},
                     "recognizer": chosen.name if chosen is not None else None}
    results["original"] = {
        "wer": _pooled(original.values(), "errors", "words"),
        "cer": _pooled(original.values(), "char_errors", "chars"),
        "mos": _mean([e.get("mos") for e in original.values()]),
        "transcripts": {k: e["transcript"] for k, e in original.items() if "transcript" in e},
    }
    for rec in reconstructors:
        rows, all_codes, start = [], [], time.perf_counter()
        for utt in tqdm(utterances, desc=rec.name, unit="utt"):
            estimate, codes = rec.reconstruct(utt.waveform)
            reference = utt.waveform
            n = min(reference.numel(), estimate.numel())
            reference, estimate = reference[:n], estimate[:n]
            row = {
                "id": utt.id, "kind": utt.kind,
                "mel_distance": mel_distance(reference, estimate, EVAL_RATE),
                "stft_distance": multi_resolution_stft_distance(reference, estimate),
            }
            if codes is not None:
                all_codes.append(codes)
            if utt.kind != "speech":  # speech metrics (intelligibility, pitch, MOS) mean nothing on music or noise
                rows.append(row)
                continue
            notes = []
            for key, score in (("pesq_wb", quality.pesq_wb), ("stoi", quality.stoi)):
                row[key], why = score(reference, estimate, EVAL_RATE)
                if why and "not installed" not in why:
                    notes.append(why)
            row.update(pitch_agreement(reference, estimate, EVAL_RATE))
            row["phase_advance_error"] = phase_advance_error(reference, estimate)
            if with_mos:
                row["mos"] = quality.mos(estimate, EVAL_RATE)
            if chosen is not None and utt.text:
                row.update(_recognised(chosen, utt.text, estimate))
            row["flags"] = degenerate_flags(estimate, row, original[utt.id].get("transcript"))
            if notes:
                row["notes"] = notes
            rows.append(row)
        speech, other = [r for r in rows if r["kind"] == "speech"], [r for r in rows if r["kind"] != "speech"]
        summary = {key: _mean([r.get(key) for r in speech]) for key in
                   ("mel_distance", "stft_distance", "pesq_wb", "stoi", *PITCH_KEYS, "phase_advance_error", "mos")}
        summary["speech_items"], summary["nonspeech_items"] = len(speech), len(other)
        summary["nonspeech_mel_distance"] = _mean([r["mel_distance"] for r in other])
        summary["nonspeech_stft_distance"] = _mean([r["stft_distance"] for r in other])
        summary["wer"], summary["cer"] = _pooled(rows, "errors", "words"), _pooled(rows, "char_errors", "chars")
        summary["wer_capped"] = _pooled(rows, "errors", "words", capped=True)
        summary["cer_capped"] = _pooled(rows, "char_errors", "chars", capped=True)
        summary["wer_original"], summary["cer_original"] = results["original"]["wer"], results["original"]["cer"]
        summary["flagged"] = sum(bool(r["flags"]) for r in speech) / len(speech) if speech else None
        summary.update({f"flag_{flag}": sum(flag in r["flags"] for r in speech) for flag in FLAGS})
        summary["n_a"] = {key: sum(r.get(key) is None for r in speech) for key in ("pesq_wb", "stoi")}
        summary["bits_per_second"] = rec.bits_per_second
        if rec.codebook_size and all_codes:
            summary.update(codebook_usage(all_codes, rec.codebook_size))
        summary["eval_seconds"] = round(time.perf_counter() - start, 1)
        results["codecs"][rec.name] = {"summary": summary, "per_utterance": rows}
    return results


ROWS = [
    ("mel_distance", "mel L1 distance (log, lower is better; speech)", "{:.3f}"),
    ("nonspeech_mel_distance", "mel L1 distance on music and noise", "{:.3f}"),
    ("stft_distance", "multi-resolution STFT distance (lower is better)", "{:.3f}"),
    ("pesq_wb", "PESQ wide-band (1-4.6)", "{:.2f}"),
    ("stoi", "STOI (0-1)", "{:.3f}"),
    ("vuv_f1", "voiced/unvoiced F1 (reference as truth)", "{:.3f}"),
    ("vuv_mcc", "voiced/unvoiced agreement (Matthews correlation)", "{:.3f}"),
    ("f0_gross_error", "F0 gross errors (unvoiced or > 50 cents off)", "{:.1%}"),
    ("f0_fine_rmse_cents", "F0 RMSE of the other frames, cents", "{:.1f}"),
    ("f0_rmse_cents", "F0 RMSE, cents (voiced in both)", "{:.1f}"),
    ("f0_spread_ratio", "F0 spread, output / reference (a buzz: ~0)", "{:.2f}"),
    ("phase_advance_error", "phase advance error per frame, radians (0 exact, 1.57 a frozen phase)", "{:.3f}"),
    ("mos", "DistillMOS (1-5; no reference: see the flags)", "{:.2f}"),
    ("wer", "WER on the reconstruction", "{:.1%}"),
    ("wer_original", "WER on the original", "{:.1%}"),
    ("cer", "CER on the reconstruction", "{:.1%}"),
    ("cer_original", "CER on the original", "{:.1%}"),
    ("wer_capped", "WER, each utterance's errors capped at its length", "{:.1%}"),
    ("cer_capped", "CER, each utterance's errors capped at its length", "{:.1%}"),
    ("flagged", "outputs flagged (silent, unvoiced, monotone, unrelated, no speech heard)", "{:.1%}"),
    ("codebook_used", "codebook entries used", "{:.1%}"),
    ("code_perplexity", "code perplexity", "{:.0f}"),
    ("bits_per_second", "bits per second", "{:.0f}"),
]


def markdown_table(results: dict) -> str:
    names = list(results["codecs"])
    recognizer = results.get("recognizer") or "no recogniser"
    lines = [f"Test set: {results['utterances']} utterances, {results['seconds']} s. "
             f"Original audio: MOS {or_na(results['original']['mos'], '{:.2f}')}, "
             f"WER {or_na(results['original']['wer'], '{:.1%}')}, CER {or_na(results['original'].get('cer'), '{:.1%}')}. "
             f"WER and CER by {recognizer}.", "",
             "| metric | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for key, label, fmt in ROWS:
        values = [or_na(results["codecs"][n]["summary"].get(key), fmt) for n in names]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    table = "\n".join(lines) + "\n"
    codecs = [n for n in names if n != "identity"]
    return table + ("\n" + paired_table(results, codecs[0]) if len(codecs) > 1 else "")


def merge_results(parts: list[dict]) -> dict:
    """One side-by-side result from evaluations of the same test set run at different times (each codec's column as
    it was scored); refuses parts scored on other utterances or by another recogniser, and repeated codec names."""
    if not parts:
        raise WavTokenizerError("nothing to merge")
    merged = json.loads(json.dumps(parts[0]))
    first_ids = sorted(merged["original"].get("transcripts") or {})
    for part in parts[1:]:
        ids = sorted(part["original"].get("transcripts") or {})
        if (part["utterances"], part["seconds"], ids) != (merged["utterances"], merged["seconds"], first_ids):
            raise WavTokenizerError(f"cannot merge evaluations of different test sets ({part['utterances']} "
                                    f"utterances, {part['seconds']} s against {merged['utterances']}, "
                                    f"{merged['seconds']} s, or other utterance ids)")
        if part.get("recognizer") != merged.get("recognizer"):
            raise WavTokenizerError(f"cannot merge evaluations by different recognisers "
                                    f"({part.get('recognizer')} and {merged.get('recognizer')})")
        for name, column in part["codecs"].items():
            if name in merged["codecs"]:
                raise WavTokenizerError(f"codec name '{name}' appears in two evaluations; rename one folder")
            merged["codecs"][name] = column
    return merged


def write_results(results: dict, out_dir: str | Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "evaluation.json", out_dir / "evaluation.md"
    # both texts first, then atomic renames: an --out that holds an earlier (merged) evaluation is never half-written
    texts = {json_path: json.dumps(results, indent=2), md_path: markdown_table(results)}
    for path, text in texts.items():
        with atomic_path(path, overwrite=True) as tmp:
            tmp.write_text(text)
    return json_path, md_path
