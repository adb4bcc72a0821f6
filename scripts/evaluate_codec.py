"""Evaluate codecs side by side on a test set (a corpus split, or a folder of audio with transcripts)."""

import argparse
import json
from pathlib import Path

from transformers.utils import logging as hf_logging

from wavtokenizer_hf.errors import WavTokenizerError, run_script
from wavtokenizer_hf.evaluation import (
    CodecReconstructor,
    Identity,
    LatentReconstructor,
    evaluate,
    load_test_set,
    markdown_table,
    merge_results,
    unique_codec_names,
    write_results,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--codec", type=Path, action="append", default=[], help="HF codec directory (repeatable)")
    parser.add_argument("--identity", action="store_true", help="also score the original audio against itself")
    parser.add_argument("--data", type=Path, help="saved corpus (datasets) or a folder of audio")
    parser.add_argument("--merge", type=Path, action="append", default=[],
                        help="an earlier evaluation (its --out folder) of the same test set to put beside (repeatable); "
                             "refused unless made with the same commit, libraries, processor, threads, recogniser "
                             "settings and utterances (audio and text)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="at most this many utterances")
    parser.add_argument("--offset", type=int, default=0, help="a corpus: skip the first N utterances of its "
                        "speaker-by-speaker order (a set disjoint from an earlier --limit N)")
    parser.add_argument("--speech-only", action="store_true", help="skip music/noise rows of a corpus")
    parser.add_argument("--without-vq", action="store_true",
                        help="also score each codec with its quantiser bypassed (continuous latents decoded)")
    parser.add_argument("--recognizer", default="auto", choices=["auto", "whisper", "pocketsphinx", "none"],
                        help="WER/CER recogniser (auto: Whisper tiny.en where installed, else pocketsphinx)")
    parser.add_argument("--no-asr", action="store_true", help="same as --recognizer none")
    parser.add_argument("--asr-variants", type=int, default=2,
                        help="perturbed readings per utterance that measure the recogniser's own spread (0: none)")
    parser.add_argument("--no-mos", action="store_true")
    parser.add_argument("--no-speaker", action="store_true", help="skip speaker similarity")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/evaluation"))
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    if not args.codec and not args.identity and not args.merge:
        raise WavTokenizerError("nothing to evaluate: pass --codec DIR (repeatable), --identity or --merge DIR")
    if (args.codec or args.identity) and args.data is None:
        raise WavTokenizerError("--data is needed to evaluate codecs (a saved corpus or a folder of audio)")
    earlier = [load_evaluation(path) for path in args.merge]
    if not args.codec and not args.identity:
        return report(merge_results(earlier), args.out)
    names = unique_codec_names(args.codec)
    reconstructors = ([Identity()] if args.identity else []) + [
        CodecReconstructor(p, args.device, name=n) for p, n in zip(args.codec, names)]
    if args.without_vq:
        reconstructors += [LatentReconstructor(p, args.device, name=f"{n} without VQ")
                           for p, n in zip(args.codec, names)]
    utterances = load_test_set(args.data, args.split, args.limit, args.speech_only, offset=args.offset)
    if args.asr_variants < 0:
        raise WavTokenizerError(f"--asr-variants must be 0 or more, got {args.asr_variants}")
    results = evaluate(reconstructors, utterances, with_asr=not args.no_asr, with_mos=not args.no_mos,
                       recognizer=args.recognizer, asr_variants=args.asr_variants, with_speaker=not args.no_speaker)
    return report(merge_results([*earlier, results]) if earlier else results, args.out)


def load_evaluation(path: Path) -> dict:
    """An earlier evaluation: its --out folder or its evaluation.json."""
    file = path / "evaluation.json" if path.is_dir() else path
    if not file.is_file():
        raise WavTokenizerError(f"{path}: no evaluation.json (pass the --out folder of an earlier evaluation)")
    return json.loads(file.read_text())


def report(results: dict, out: Path) -> int:
    json_path, md_path = write_results(results, out)
    print(markdown_table(results))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    run_script(main)
