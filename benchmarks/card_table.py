"""A model card's comparison table from one evaluation of two codecs (`evaluate_codec.py --codec A --codec B`):
each headline metric for both, the rates with their ratio to the originals' (capped to capped) and the recogniser's
spread, and B minus A with its paired 95% interval (over speakers, then utterances, where speakers repeat); then the
headline metrics by speaker (or `--by source`).

  python benchmarks/card_table.py docs/evaluations/keep_training_240min/test --reference default_codec \
      --codec keep240_fp16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wavtokenizer_hf.errors import WavTokenizerError, run_script
from wavtokenizer_hf.listing import or_na
from wavtokenizer_hf.evaluation.paired import format_difference, paired_differences, resampling_unit
from wavtokenizer_hf.evaluation.report import speaker_table

ROWS = [  # (summary key, label, format, paired key or None)
    ("stoi", "STOI", "{:.3f}", "stoi"),
    ("speaker_similarity", "speaker similarity", "{:.3f}", "speaker_similarity"),
    ("mel_distance", "mel L1 distance (within 60 dB of the peak)", "{:.3f}", "mel_distance"),
    ("wer", "WER (Whisper tiny.en)", "rate", None),
    ("cer", "CER (Whisper tiny.en)", "rate", None),
    ("wer_capped", "WER, errors capped per utterance", "rate", "wer_capped"),
    ("cer_capped", "CER, errors capped per utterance", "rate", "cer_capped"),
    ("vuv_f1", "voiced/unvoiced F1", "{:.3f}", "vuv_f1"),
    ("f0_gross_error", "F0 gross errors", "{:.1%}", "f0_gross_error"),
    ("f0_rmse_cents", "F0 RMSE, voiced in both (cents)", "{:.0f}", None),
    ("phase_advance_error", "phase advance error (radians)", "{:.3f}", "phase_advance_error"),
    ("pesq_wb", "PESQ (wideband)", "{:.2f}", "pesq_wb"),
    ("mos", "DistillMOS", "mos", "mos"),
    ("flagged", "outputs flagged", "{:.1%}", None),
    ("codebook_used", "codebook entries used", "{:.1%}", None),
]


def cell(summary: dict, key: str, fmt: str) -> str:
    value = summary.get(key)
    if value is None:
        return "n/a"
    if fmt == "rate":
        ratio = summary.get(f"{key}_ratio")
        text = f"{value:.1%}" + (f" ({ratio:.1f}x)" if ratio is not None else "")
        spread = summary.get(f"{key}_spread")
        return text + (f", {spread[0]:.1%}-{spread[1]:.1%}" if spread else "")
    if fmt == "mos":
        return f"{value:.2f} ({summary.get('flagged', 0):.0%} flagged)"
    return fmt.format(value)


def card_table(results: dict, reference: str, codec: str, by: str = "speaker") -> str:
    for name in (reference, codec):
        if name not in results["codecs"]:
            raise WavTokenizerError(f"no codec '{name}' in this evaluation ({', '.join(results['codecs'])})")
    two = {**results, "codecs": {n: results["codecs"][n] for n in (reference, codec)}}
    paired = paired_differences(two, reference)[codec]
    a, b = results["codecs"][reference]["summary"], results["codecs"][codec]["summary"]
    original = results["original"]
    rate = lambda key: or_na(original.get(key), "{:.1%}")  # noqa: E731
    readings = " and the recogniser's readings" if any(
        row.get("variants") for row in results["codecs"][reference]["per_utterance"]) else ""
    lines = [f"{results['utterances']} utterances, {results['seconds']} s; {results.get('transcribed', '')}. "
             f"Originals: WER {rate('wer')} (capped {rate('wer_capped')}), CER {rate('cer')} "
             f"(capped {rate('cer_capped')})"
             + (f", DistillMOS {original['mos']:.2f}" if original.get("mos") is not None else "")
             + f". Intervals resample {resampling_unit(two, reference)}{readings}.", "",
             f"| metric | {reference} | {codec} | difference [95% interval] |", "| --- | --- | --- | --- |"]
    for key, label, fmt, paired_key in ROWS:
        difference = ""
        entry = paired.get(paired_key) if paired_key else None
        if entry:
            difference = format_difference(paired_key, entry)
        lines.append(f"| {label} | {cell(a, key, fmt)} | {cell(b, key, fmt)} | {difference} |")
    groups = speaker_table(two, by)
    return "\n".join(lines) + "\n" + ("\n" + groups if groups else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluation", type=Path, help="an evaluation's --out folder (or its evaluation.json)")
    parser.add_argument("--reference", required=True, help="the codec compared against (first column)")
    parser.add_argument("--codec", required=True)
    parser.add_argument("--by", choices=["speaker", "source"], default="speaker", help="the breakdown's groups")
    args = parser.parse_args()
    path = args.evaluation / "evaluation.json" if args.evaluation.is_dir() else args.evaluation
    if not path.is_file():
        raise WavTokenizerError(f"{args.evaluation}: no evaluation.json")
    print(card_table(json.loads(path.read_text()), args.reference, args.codec, args.by))
    return 0


if __name__ == "__main__":
    run_script(main)
