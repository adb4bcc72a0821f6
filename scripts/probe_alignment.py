"""Measure how codec tokens align with phones, words and text tokens, against baselines, and write an HTML report.

  python scripts/probe_alignment.py --data runs/demo/corpus --codec demo=wavtokenizer --out runs/demo/report.html
  python scripts/probe_alignment.py --data runs/demo/corpus --codec runs/codec/step0000500 \
      --codec runs/codec/step0001000 --codec runs/codec/final --lm runs/tts/model --out report.html
  python scripts/probe_alignment.py --data my_recordings/ --codec converted-large-75 --out mine.html  # aligned here

--data: a corpus built by scripts/build_corpus.py (its timings are used) or a folder of audio files with transcripts
(NAME.txt, transcripts.tsv or manifest.jsonl; aligned offline with pocketsphinx). Baselines (random codes with the
same usage, k-means on log-mel, shuffled labels) use the first codec's K and frames. Writes the report and, beside
it, the numbers as JSON.
"""

import argparse
import json
import sys
from pathlib import Path

from transformers.utils import logging as hf_logging

from lm.probes import json_summary, run_probes, write_report
from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.errors import WavTokenizerError


def parse_codecs(values: list[str]) -> dict[str, Path]:
    codecs = {}
    for value in values:
        name, _, path = value.rpartition("=") if "=" in value else ("", "", value)
        path = Path(path)
        if not (path / "config.json").exists():
            raise WavTokenizerError(f"--codec {value}: {path} is not a codec directory (no config.json)")
        codecs[name or (path.name if path.name not in ("final", "model") else f"{path.parent.name}/{path.name}")] = path
    return codecs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="corpus with timings, or audio folder with transcripts")
    parser.add_argument("--split", default="test", help="corpus split (default: test, the held-out one)")
    parser.add_argument("--codec", action="append", required=True, metavar="[NAME=]DIR",
                        help="codec to probe (repeat for several; the first sets the baselines' K)")
    parser.add_argument("--lm", default=None, help="an LM trained on the joint vocabulary (embedding analysis)")
    parser.add_argument("--out", type=Path, required=True, help="HTML report to write")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many utterances")
    parser.add_argument("--rounds", type=int, default=200, help="bootstrap resamplings")
    parser.add_argument("--drop-silence", action="store_true", help="leave frames outside phones out")
    parser.add_argument("--examples", type=int, default=2, help="example utterances in the report")
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    try:
        result = run_probes(parse_codecs(args.codec), args.data, args.split, args.limit, args.rounds,
                            args.drop_silence, args.lm)
        write_report(result, args.out, args.examples)
        summary = json_summary(result)
        with atomic_path(args.out.with_suffix(".json"), overwrite=True) as tmp:
            Path(tmp).write_text(json.dumps(summary, indent=2))
    except WavTokenizerError as err:
        print(f"probe_alignment: error: {err}", file=sys.stderr)
        return 2
    for row in summary["rows"]:
        m = row["metrics"]
        print(f"{row['name'][:48]:48s} PNMI {m['pnmi']['value']:.3f} [{m['pnmi']['low']:.3f}, {m['pnmi']['high']:.3f}]"
              f"  mapping acc {m['mapping_accuracy']['value']:.3f} [{m['mapping_accuracy']['low']:.3f}, "
              f"{m['mapping_accuracy']['high']:.3f}]")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
