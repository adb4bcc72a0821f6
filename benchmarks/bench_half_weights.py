"""What storing a codec's weights in float16 (`wavtokenizer half-weights`) changes: size, codes, audio.

  python benchmarks/bench_half_weights.py --codec wavtokenizer_hf/default_codec --data runs/voices_test_ref \
      --limit 120 --out benchmarks/results_half_weights.json

Both folders load with stock `AutoModel.from_pretrained` and run in float32; they differ only in the weights' last
bits. Per utterance of `--data` (a corpus split or a folder of audio): the share of frames whose code changes (each
model encodes the original), and, for the codes of the float32 model decoded by both, the signal-to-difference ratio
and mel distance between the two decodes; then each model's own copy synthesis (its codes, its decode) against the
original: mel distance and STOI, and their paired change. The recogniser-level check (Whisper WER/CER, speaker
similarity, with intervals over speakers) is the evaluation of both folders side by side:

  wavtokenizer half-weights wavtokenizer_hf/default_codec runs/default_codec_fp16
  python scripts/evaluate_codec.py --codec wavtokenizer_hf/default_codec --codec runs/default_codec_fp16 \
      --data runs/voices_test_ref --limit 120 --no-mos --out runs/evaluation_half_weights
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import tempfile
from pathlib import Path

import torch
import transformers

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.codec import Codec
from wavtokenizer_hf.evaluation import load_test_set
from wavtokenizer_hf.evaluation.quality import stoi
from wavtokenizer_hf.evaluation.spectral import mel_distance
from wavtokenizer_hf.half_weights import WEIGHTS, stored_dtypes, write_half_weights

RATE = 24000


def difference_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    """10 log10(energy of `reference` / energy of `other - reference`); inf when they are equal."""
    noise = float((other - reference).pow(2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float(reference.pow(2).sum()) / noise)


def compare(full: Codec, half: Codec, utterances) -> dict:
    rows = []
    with torch.inference_mode():
        for utterance in utterances:
            original = utterance.waveform
            codes_full, codes_half = full.encode(original, RATE), half.encode(original, RATE)
            same_codes_full = full.decode(codes_full)[0]
            same_codes_half = half.decode(codes_full, allow_other_model=True)[0]
            own_half = half.decode(codes_half)[0]
            rows.append({
                "id": utterance.id,
                "codes_changed": float((codes_full.audio_codes != codes_half.audio_codes).float().mean()),
                "decode_difference_db": difference_db(same_codes_full, same_codes_half),
                "decode_mel_distance": mel_distance(same_codes_full, same_codes_half, RATE),
                "mel_full": mel_distance(original, same_codes_full, RATE),
                "mel_half": mel_distance(original, own_half, RATE),
                "stoi_full": stoi(original, same_codes_full, RATE)[0],
                "stoi_half": stoi(original, own_half, RATE)[0],
            })
    mean = lambda key: statistics.fmean(r[key] for r in rows if r[key] is not None)  # noqa: E731
    finite = [r["decode_difference_db"] for r in rows if math.isfinite(r["decode_difference_db"])]
    return {
        "utterances": len(rows),
        "frames_with_another_code": round(mean("codes_changed"), 5),
        "utterances_with_another_code": sum(r["codes_changed"] > 0 for r in rows),
        "decode_difference_db_median": round(statistics.median(finite), 1) if finite else math.inf,
        "decode_difference_db_min": round(min(finite), 1) if finite else math.inf,
        "decode_mel_distance_mean": round(mean("decode_mel_distance"), 5),
        "mel_distance_to_original": {"float32": round(mean("mel_full"), 4), "float16": round(mean("mel_half"), 4)},
        "stoi": {"float32": round(mean("stoi_full"), 4), "float16": round(mean("stoi_half"), 4)},
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", type=Path, default=Path("wavtokenizer_hf/default_codec"))
    parser.add_argument("--data", type=Path, required=True, help="a saved corpus (its --split) or a folder of audio")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    utterances = [u for u in load_test_set(args.data, args.split, limit=args.limit, speech_only=True)]
    with tempfile.TemporaryDirectory() as scratch:
        half_dir = write_half_weights(args.codec, Path(scratch) / "half")
        full, half = Codec.from_pretrained(args.codec), Codec.from_pretrained(half_dir)
        sizes = {"float32": (args.codec / WEIGHTS).stat().st_size, "float16": (half_dir / WEIGHTS).stat().st_size}
        result = {
            "command": "python benchmarks/bench_half_weights.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
            "device": "cpu", "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "weights_bytes": sizes, "stored_tensors": stored_dtypes(half_dir),
            "codebook_fingerprint_equal": full.fingerprint == half.fingerprint,
            **compare(full, half, utterances),
        }
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    if args.out:
        with atomic_path(args.out, overwrite=True) as tmp:
            tmp.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
