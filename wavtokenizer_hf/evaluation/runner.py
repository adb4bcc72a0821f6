"""Evaluate one or more codecs (and the identity "codec") on a test set; JSON plus a side-by-side markdown table."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_path
from ..audio_io import resample
from ..codebook import codebook_usage
from ..codec import Codec
from ..errors import WavTokenizerError
from . import asr, provenance, quality, speaker
from .pitch import PITCH_KEYS, pitch_agreement
from .report import markdown_table
from .spectral import mel_distance, multi_resolution_stft_distance, phase_advance_error
from .test_set import EVAL_RATE, TestSet, Utterance, load_test_set  # noqa: F401 - re-exported


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
        self.weights_sha256 = provenance.model_sha256(self.codec.model)

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
        self.weights_sha256 = provenance.model_sha256(self.codec.model)

    @torch.inference_mode()
    def reconstruct(self, waveform: torch.Tensor) -> tuple[torch.Tensor, None]:
        model = self.codec.model
        audio = self.codec.prepare(waveform, EVAL_RATE).to(self.codec.device)
        latents = model.encoder_model.encoder(audio.unsqueeze(1))
        bandwidth_id = torch.zeros(1, dtype=torch.long, device=latents.device)  # as the stock decode's default
        decoded = model.head(model.backbone(latents, bandwidth_id))[:, 0, : audio.shape[-1]].float().cpu()
        return resample(decoded, self.codec.sampling_rate, EVAL_RATE)[0], None


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


def _recognised(recognizer: asr.Recognizer, text: str, waveform: torch.Tensor, variants: int) -> dict:
    """Errors of the recogniser's transcript, and of `variants` more transcripts of the same audio under inaudible
    perturbations (`asr.perturbed`): how far the recogniser alone moves the numbers."""
    hypothesis = recognizer.transcribe(waveform, EVAL_RATE)
    errors, words = asr.word_errors(text, hypothesis)
    char_errors, chars = asr.char_errors(text, hypothesis)
    row = {"errors": errors, "words": words, "char_errors": char_errors, "chars": chars, "transcript": hypothesis}
    if variants:
        row["variants"] = []
        for seed in range(1, variants + 1):
            heard = recognizer.transcribe(asr.perturbed(waveform, seed), EVAL_RATE)
            row["variants"].append({"errors": asr.word_errors(text, heard)[0],
                                    "char_errors": asr.char_errors(text, heard)[0], "transcript": heard})
    return row


SILENT_RMS = 1e-4  # -80 dBFS
MONOTONE_SPREAD = 0.2  # output F0 spread below a fifth of the reference's: a buzz at one pitch
UNRELATED_STOI = 0.2  # below this the output does not follow the reference's envelope over time
UNVOICED_SHARE = 0.02  # an output with (almost) no voiced frame where the reference speaks
LENGTH_TOLERANCE = 600  # samples at 24 kHz: one hop of the 40 Hz codec (the 75 Hz one's is 320)
DROPOUT_SHARE = 0.1  # an output silent in more than a tenth of the reference's loud frames has dropped audio
FLAGS = ("silent", "unvoiced", "monotone", "unrelated", "no_speech_heard", "length_mismatch", "dropout")


def dropout_share(reference: torch.Tensor, estimate: torch.Tensor, frame: int = 480) -> float:
    """Share of the reference's loud 20 ms frames (within 30 dB of its loudest) in which the estimate is silent
    (60 dB or more below the reference's loudest frame): audio the output dropped."""
    n = min(reference.numel(), estimate.numel()) // frame * frame
    if n == 0:
        return 0.0
    level = lambda x: 10 * torch.log10(x[:n].double().reshape(-1, frame).pow(2).mean(1) + 1e-20)  # noqa: E731
    ref, est = level(reference), level(estimate)
    loud = ref > ref.max() - 30
    return float((loud & (est < ref.max() - 60)).sum() / loud.sum().clamp(min=1))


def degenerate_flags(estimate: torch.Tensor, row: dict, original_transcript: str | None) -> list[str]:
    """Why an output should not be trusted whatever its scores: silence, no voicing or one pitch for a speaking
    voice, audio unrelated to the reference over time (e.g. reversed), no words heard where the original has
    some, a length that differs from the input's by more than a hop, or silence where the reference is loud
    (dropped audio). No-reference scores (MOS) in particular can rate such outputs well."""
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
    if abs(row.get("length_difference", 0)) > LENGTH_TOLERANCE:
        flags.append("length_mismatch")
    if row.get("dropout_share", 0.0) > DROPOUT_SHARE:
        flags.append("dropout")
    return flags


def aligned(reference: torch.Tensor, estimate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The pair at one length, and the estimate's length minus the reference's. Within `LENGTH_TOLERANCE` both are
    cut to the shorter (a codec rounds to whole frames); beyond it the shorter is padded with silence, so that a
    truncated output is scored as silent where it is missing, and an output that runs on as sound the reference
    lacks."""
    difference = estimate.numel() - reference.numel()
    if abs(difference) <= LENGTH_TOLERANCE:
        n = min(reference.numel(), estimate.numel())
        return reference[:n], estimate[:n], difference
    n = max(reference.numel(), estimate.numel())
    pad = lambda x: torch.nn.functional.pad(x, (0, n - x.numel()))  # noqa: E731
    return pad(reference), pad(estimate), difference


def _pooled(rows, errors: str, total: str, capped: bool = False) -> float | None:
    """Errors over reference units, pooled over utterances; `capped`: each utterance's errors count at most its
    reference length, so that one recogniser loop ("the army and the army and ...", hundreds of insertions) cannot
    outweigh every other utterance."""
    counted = sum(r.get(total, 0) for r in rows)
    count = (lambda r: min(r.get(errors, 0), r.get(total, 0))) if capped else (lambda r: r.get(errors, 0))
    return sum(count(r) for r in rows) / counted if counted else None


def recogniser_spread(rows, errors: str, total: str) -> list[float] | None:
    """[lowest, highest] capped rate over the readings of the test set: the unperturbed one and each perturbed one
    (reading k takes every utterance's k-th transcript). None without perturbed readings."""
    scored = [r for r in rows if total in r]
    if not scored or not all(r.get("variants") for r in scored):
        return None
    readings = [_pooled(scored, errors, total, capped=True)]
    for k in range(min(len(r["variants"]) for r in scored)):
        readings.append(_pooled([{errors: r["variants"][k][errors], total: r[total]} for r in scored], errors, total,
                                capped=True))
    return [min(readings), max(readings)]


def _ratio(value: float | None, original: float | None) -> float | None:
    return value / original if value is not None and original else None


def _devices(reconstructors: list[Reconstructor]) -> list[str]:
    """Where the codecs ran (their outputs differ by ~1e-6 between devices), with the GPU's name and CUDA version."""
    out = set()
    for rec in reconstructors:
        codec = getattr(rec, "codec", None)
        device = torch.device(getattr(codec, "device", "cpu"))
        if device.type == "cuda":
            out.add(f"{device} {torch.cuda.get_device_name(device)} CUDA {torch.version.cuda}")
        else:
            out.add(str(device))
    return sorted(out)


def _speaker_settings() -> dict:
    from importlib.metadata import version

    return {"encoder": f"resemblyzer {version('resemblyzer')}", "weights_sha256": speaker.WEIGHTS_SHA256,
            "level_dbfs": speaker.TARGET_DBFS}


SUMMARY_MEANS = ("mel_distance", "stft_distance", "pesq_wb", "stoi", *PITCH_KEYS, "phase_advance_error",
                 "speaker_similarity", "mos")


def evaluate(reconstructors: list[Reconstructor], utterances: list[Utterance], with_asr: bool = True,
             with_mos: bool = True, recognizer: str = "auto", asr_variants: int = 2,
             with_speaker: bool = True) -> dict:
    """Metrics per codec (means over utterances; WER and CER pooled over words and characters, capped and not)
    beside the original audio's own, with the provenance that makes them comparable. `recognizer`: auto (Whisper
    where installed, else pocketsphinx), whisper, pocketsphinx. `asr_variants`: perturbed readings per utterance
    that measure the recogniser's own spread. `with_speaker`: speaker similarity where its package is installed."""
    names = [rec.name for rec in reconstructors]
    if len(set(names)) != len(names):
        raise WavTokenizerError(f"two codecs share a name in {names}: each needs its own column")
    chosen = asr.recognizer(recognizer) if with_asr else None
    variants = asr_variants if chosen is not None else 0
    with_mos = with_mos and quality.has("distillmos")
    with_speaker = with_speaker and speaker.available()
    original: dict[str, dict] = {}
    for utt in tqdm(utterances, desc="original", unit="utt"):
        entry: dict = {}
        if chosen is not None and utt.text:
            entry.update(_recognised(chosen, utt.text, utt.waveform, variants))
        if with_mos and utt.kind == "speech":
            entry["mos"] = quality.mos(utt.waveform, EVAL_RATE)
        original[utt.id] = entry
    test_set = TestSet(utterances) if not isinstance(utterances, TestSet) else utterances
    results: dict = {"utterances": len(utterances),
                     "seconds": round(sum(u.waveform.numel() for u in utterances) / EVAL_RATE, 2),
                     "transcribed": test_set.transcript_line(), "test_set_notes": test_set.notes, "codecs": {},
                     "recognizer": chosen.name if chosen is not None else None,
                     "groups": {u.id: {"speaker": u.speaker, "source": u.source} for u in utterances},
                     "provenance": provenance.collect(chosen.settings() if chosen is not None else None, {
                         "asr_variants": variants, "speaker_similarity": _speaker_settings() if with_speaker else None,
                         "devices": _devices(reconstructors),
                         "mos": with_mos, "utterances": provenance.utterance_hashes(utterances)})}
    entries = list(original.values())
    results["original"] = {
        "wer": _pooled(entries, "errors", "words"), "cer": _pooled(entries, "char_errors", "chars"),
        "wer_capped": _pooled(entries, "errors", "words", capped=True),
        "cer_capped": _pooled(entries, "char_errors", "chars", capped=True),
        "wer_capped_spread": recogniser_spread(entries, "errors", "words"),
        "mos": _mean([e.get("mos") for e in entries]),
        "transcripts": {k: e["transcript"] for k, e in original.items() if "transcript" in e},
        "per_utterance": original,
    }
    for rec in reconstructors:
        rows, all_codes, start = [], [], time.perf_counter()
        for utt in tqdm(utterances, desc=rec.name, unit="utt"):
            estimate, codes = rec.reconstruct(utt.waveform)
            reference, estimate, difference = aligned(utt.waveform, estimate.float())
            row = {
                "id": utt.id, "kind": utt.kind, "speaker": utt.speaker, "source": utt.source,
                "length_difference": difference,
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
            row["dropout_share"] = dropout_share(reference, estimate)
            if with_speaker:
                row["speaker_similarity"], why = speaker.speaker_similarity_with_reason(reference, estimate,
                                                                                          EVAL_RATE)
                if why:
                    notes.append(why)
            if with_mos:
                row["mos"] = quality.mos(estimate, EVAL_RATE)
            if chosen is not None and utt.text:
                row.update(_recognised(chosen, utt.text, estimate, variants))
            row["flags"] = degenerate_flags(estimate, row, original[utt.id].get("transcript"))
            if notes:
                row["notes"] = notes
            rows.append(row)
        results["codecs"][rec.name] = {"summary": summarise(rows, results["original"], rec, all_codes),
                                       "per_utterance": rows,
                                       "weights_sha256": getattr(rec, "weights_sha256", None)}
        results["codecs"][rec.name]["summary"]["eval_seconds"] = round(time.perf_counter() - start, 1)
    return results


def summarise(rows: list[dict], original: dict, rec: Reconstructor, all_codes: list) -> dict:
    """One codec's column: means, pooled rates beside the originals' (capped with capped, uncapped with uncapped),
    the recogniser's spread, flags and codebook use."""
    speech, other = [r for r in rows if r["kind"] == "speech"], [r for r in rows if r["kind"] != "speech"]
    summary = {key: _mean([r.get(key) for r in speech]) for key in SUMMARY_MEANS}
    summary["speech_items"], summary["nonspeech_items"] = len(speech), len(other)
    summary["nonspeech_mel_distance"] = _mean([r["mel_distance"] for r in other])
    summary["nonspeech_stft_distance"] = _mean([r["stft_distance"] for r in other])
    summary["wer"], summary["cer"] = _pooled(rows, "errors", "words"), _pooled(rows, "char_errors", "chars")
    summary["wer_capped"] = _pooled(rows, "errors", "words", capped=True)
    summary["cer_capped"] = _pooled(rows, "char_errors", "chars", capped=True)
    summary["wer_capped_spread"] = recogniser_spread(rows, "errors", "words")
    summary["cer_capped_spread"] = recogniser_spread(rows, "char_errors", "chars")
    for key in ("wer", "cer", "wer_capped", "cer_capped"):  # this column's own originals, kept through merges
        summary[f"{key}_original"] = original[key]
        summary[f"{key}_ratio"] = _ratio(summary[key], original[key])
    summary["mos_original"] = original["mos"]
    summary["flagged"] = sum(bool(r["flags"]) for r in speech) / len(speech) if speech else None
    summary.update({f"flag_{flag}": sum(flag in r["flags"] for r in speech) for flag in FLAGS})
    summary["n_a"] = {key: sum(r.get(key) is None for r in speech) for key in ("pesq_wb", "stoi", "speaker_similarity")}
    summary["bits_per_second"] = rec.bits_per_second
    if rec.codebook_size and all_codes:
        summary.update(codebook_usage(all_codes, rec.codebook_size))
    return summary


def merge_results(parts: list[dict]) -> dict:
    """One side-by-side result from evaluations of the same test set run apart. Refused unless every part carries
    a provenance that matches the first's in all but the command (package commit, library versions, processor,
    threads, recogniser settings, and each utterance's audio and reference text by hash), and codec names are
    unique. Each column keeps its own originals' scores and its part's provenance."""
    if not parts:
        raise WavTokenizerError("nothing to merge")
    merged = json.loads(json.dumps(parts[0]))
    for name in merged["codecs"]:
        merged["codecs"][name].setdefault("provenance", merged.get("provenance"))
    for part in parts[1:]:
        if (part["utterances"], part["seconds"]) != (merged["utterances"], merged["seconds"]):
            raise WavTokenizerError(f"cannot merge evaluations of different test sets ({part['utterances']} "
                                    f"utterances, {part['seconds']} s against {merged['utterances']}, "
                                    f"{merged['seconds']} s)")
        if part.get("recognizer") != merged.get("recognizer"):
            raise WavTokenizerError(f"cannot merge evaluations by different recognisers "
                                    f"({part.get('recognizer')} and {merged.get('recognizer')})")
        provenance.require_same(merged.get("provenance"), part.get("provenance"), "these evaluations")
        for name, column in part["codecs"].items():
            if name == "identity" and name in merged["codecs"]:
                continue  # the originals against themselves: the same in every part whose provenance matched
            if name in merged["codecs"]:
                raise WavTokenizerError(f"codec name '{name}' appears in two evaluations; rename one folder")
            merged["codecs"][name] = {**column, "provenance": part.get("provenance")}
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
