"""Audio BPE (issue 20, "Measure"): tokens per second of audio and compression for each vocabulary size, fitted on
the training utterances and measured on held-out ones, and the most frequent multi-code tokens with their durations.

  python benchmarks/bench_audio_bpe.py --data runs/demo/tokenized --codec wavtokenizer_hf/default_codec \
      --vocab-sizes 1024 2048 4096 8192 16384 --model-types bpe unigram --out results_audio_bpe.json
  python benchmarks/bench_audio_bpe.py --data TOKENIZED/train --validation TOKENIZED/validation ...
  python benchmarks/bench_audio_bpe.py --data SAVED_DATASET_DICT --split train --validation-split validation ...

Held-out utterances: `--validation` (a separately tokenized split), else the LM scripts' own split of `--data`
(`lm.streams.split_by_utterance`, `--validation-share`), so these are the utterances an audio GPT is scored on.
`--save-dir DIR` keeps each trained vocabulary (DIR/<type>-<size>) for `--audio-bpe`.

Bits per second of audio, raw codes vs BPE, needs two trained GPTs: `--lm-scores raw.json bpe.json` (each with the
held-out "nats", "seconds" and optionally "tokens") adds `lm.audio_bpe.compare_bits_per_second` to the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lm.audio_bpe import AudioBPE, compare_bits_per_second, compression, top_pieces, train_audio_bpe  # noqa: E402
from lm.streams import codes_of, load_tokenized, split_by_utterance  # noqa: E402


def read_streams(data: str, split: str, validation: str | None, validation_split: str | None,
                 share: float) -> tuple[list, list, float]:
    """(train codes, held-out codes, frame rate) as lists of 1-D arrays."""
    rows = load_tokenized(data, split)
    codes = [codes_of(row) for row in rows]
    rate = float(rows[0]["frame_rate"])
    if validation is not None or validation_split is not None:
        held_rows = load_tokenized(validation or data, validation_split)
        return codes, [codes_of(row) for row in held_rows], rate
    held_out = split_by_utterance([str(row.get("id", i)) for i, row in enumerate(rows)], share)
    return ([c for c, h in zip(codes, held_out) if not h], [c for c, h in zip(codes, held_out) if h], rate)


def codebook_size_of(codec: str | None, given: int | None) -> int:
    if given is not None:
        return given
    return int(json.loads((Path(codec) / "config.json").read_text())["codebook_size"])


def measure(bpe: AudioBPE, train: list, held_out: list, rate: float, top: int, fit_seconds: float) -> dict:
    start = time.perf_counter()
    encoded = bpe.encode_batch(held_out)
    encode_seconds = time.perf_counter() - start
    assert all(np.array_equal(bpe.decode(ids), codes) for ids, codes in zip(encoded, held_out)), "round trip failed"
    held = compression(bpe, held_out, rate)
    return {"model_type": bpe.model_type, "requested_vocab_size": bpe.info.get("requested_vocab_size", bpe.vocab_size),
            "vocab_size": bpe.vocab_size, "fit_seconds": round(fit_seconds, 2),
            "train_codes_per_token": compression(bpe, train, rate)["codes_per_token"],
            "held_out_tokens_per_second": held["tokens_per_second"],
            "held_out_codes_per_token": held["codes_per_token"],
            "encode_codes_per_second": held["codes"] / max(encode_seconds, 1e-9),
            "top_pieces": top_pieces(bpe, encoded, rate, top)}


def print_table(results: list[dict], rate: float) -> None:
    print(f"{'type':8} {'vocab':>13} {'fit s':>6} {'train c/t':>9} {'held tok/s':>10} {'held c/t':>8}")
    print(f"{'codes':8} {'':>13} {'':>6} {1.0:9.2f} {rate:10.1f} {1.0:8.2f}")
    for r in results:
        vocab = f"{r['vocab_size']}/{r['requested_vocab_size']}"
        print(f"{r['model_type']:8} {vocab:>13} {r['fit_seconds']:6.1f} {r['train_codes_per_token']:9.2f} "
              f"{r['held_out_tokens_per_second']:10.1f} {r['held_out_codes_per_token']:8.2f}")
    for r in results:
        pieces = ", ".join(f"{p['token']} x{p['count']} ({p['milliseconds']:.0f} ms)" for p in r["top_pieces"][:5])
        print(f"{r['model_type']}-{r['requested_vocab_size']} most frequent: {pieces}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="tokenized dataset (lm.streams.load_tokenized)")
    parser.add_argument("--split", default="train", help="split of a saved DatasetDict")
    parser.add_argument("--validation", default=None, help="tokenized held-out data (default: the LM split of --data)")
    parser.add_argument("--validation-split", default=None, help="held-out split of a saved DatasetDict")
    parser.add_argument("--validation-share", type=float, default=0.1)
    parser.add_argument("--codec", default="wavtokenizer_hf/default_codec", help="codec directory (its codebook size)")
    parser.add_argument("--codebook-size", type=int, default=None, help="instead of --codec")
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--model-types", nargs="+", default=["bpe", "unigram"], choices=["bpe", "unigram"])
    parser.add_argument("--max-piece-frames", type=int, default=16)
    parser.add_argument("--top", type=int, default=20, help="most frequent multi-code tokens to list")
    parser.add_argument("--save-dir", type=Path, default=None)
    parser.add_argument("--lm-scores", type=Path, nargs=2, default=None, metavar=("RAW_JSON", "BPE_JSON"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    codebook_size = codebook_size_of(args.codec, args.codebook_size)
    train, held_out, rate = read_streams(args.data, args.split, args.validation, args.validation_split,
                                         args.validation_share)
    report = {"command": " ".join(["python", "benchmarks/bench_audio_bpe.py", *(argv or sys.argv[1:])]),
              "codebook_size": codebook_size, "frame_rate": rate, "train_utterances": len(train),
              "train_seconds": sum(map(len, train)) / rate, "held_out_utterances": len(held_out),
              "held_out_seconds": sum(map(len, held_out)) / rate, "results": []}
    for model_type in args.model_types:
        for vocab_size in args.vocab_sizes:
            start = time.perf_counter()
            bpe = train_audio_bpe(train, codebook_size, vocab_size, model_type, max_piece_frames=args.max_piece_frames)
            fit_seconds = time.perf_counter() - start
            if args.save_dir is not None:
                bpe.save(args.save_dir / f"{model_type}-{vocab_size}")
            report["results"].append(measure(bpe, train, held_out, rate, args.top, fit_seconds))
    if args.lm_scores is not None:
        raw, bpe_scores = (json.loads(path.read_text()) for path in args.lm_scores)
        report["bits_per_second"] = compare_bits_per_second(raw, bpe_scores)
    print(f"{report['train_utterances']} training utterances ({report['train_seconds']:.0f} s), "
          f"{report['held_out_utterances']} held out ({report['held_out_seconds']:.0f} s), K={codebook_size}")
    print_table(report["results"], rate)
    if "bits_per_second" in report:
        print("bits per second:", json.dumps(report["bits_per_second"]))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
