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
    parser.add_argument("--espeak-only", action="store_true", help="do not use flite's natural voices even if installed")
    args = parser.parse_args()
    from wavtokenizer_hf.corpus.builder import find_backends

    backends = find_backends(not args.espeak_only)
    print("speech backends found: " + ", ".join(f"{k} {v}" for k, v in backends.items())
          + ("" if "flite" in backends or args.espeak_only else "; flite not found (make corpus-extras installs it)"))
    summary = build_corpus(args.out, args.hours, args.seed, args.jobs, args.overwrite, natural=not args.espeak_only)
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_script(main)
