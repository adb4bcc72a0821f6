"""Build the offline speech + non-speech corpus as a Hugging Face dataset (train/validation/test)."""

import argparse
import json
from pathlib import Path

from wavtokenizer_hf.corpus import build_corpus
from wavtokenizer_hf.errors import run_script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/corpus"), help="output dataset directory")
    parser.add_argument("--hours", type=float, default=0.05, help="total hours of audio (all splits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=None, help="parallel synthesis processes (default: all cores)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--espeak-only", action="store_true", help="use espeak-ng only, whatever else is installed")
    parser.add_argument("--licence", choices=["any", "free"], default="any",
                        help="'free': leave out non-free voices (MBROLA, RHVoice: non-commercial licences)")
    parser.add_argument("--score-test", type=int, default=12, metavar="N",
                        help="transcribe N test utterances per test speaker with Whisper (0: skip)")
    parser.add_argument("--splits", nargs="+", choices=["train", "validation", "test"], default=None,
                        help="build only these splits of the same plan (their rows equal a whole build's)")
    parser.add_argument("--test-speakers", nargs="+", default=(), metavar="SPEAKER",
                        help="the test split's speakers instead of the default four (each needs an English voice)")
    args = parser.parse_args()
    from wavtokenizer_hf.corpus.builder import find_backends

    backends = find_backends(not args.espeak_only, args.licence)
    print("speech backends found: " + ", ".join(f"{k} ({v})" for k, v in backends.items())
          + ("" if len(backends) > 1 or args.espeak_only else
             "; no other voices found (make corpus-extras [NONFREE=1] installs them)"))
    summary = build_corpus(args.out, args.hours, args.seed, args.jobs, args.overwrite, natural=not args.espeak_only,
                           licence=args.licence, score_test=args.score_test,
                           splits=None if args.splits is None else tuple(args.splits),
                           test_speakers=tuple(args.test_speakers))
    brief = {k: v for k, v in summary.items() if k not in ("speakers", "splits")}
    brief["splits"] = {k: {f: v for f, v in info.items() if f not in ("voices", "speakers")} | {
        "speakers": len(info["speakers"])} for k, info in summary["splits"].items()}
    print(json.dumps(brief, indent=2, ensure_ascii=False))
    print(f"wrote {args.out} (per-speaker table in {args.out}/README.md)")
    return 0


if __name__ == "__main__":
    run_script(main)
