"""Measure how codec tokens align with phones, words and text tokens, against baselines, and write an HTML report.

  python scripts/probe_alignment.py --data runs/demo/corpus --codec demo=wavtokenizer --out runs/demo/report.html
  python scripts/probe_alignment.py --data runs/demo/corpus --codec runs/codec/step0000500 \
      --codec runs/codec/step0001000 --codec runs/codec/final --lm runs/tts/model --out report.html
  python scripts/probe_alignment.py --data my_recordings/ --codec converted-large-75 --out mine.html  # aligned here
  python scripts/probe_alignment.py --data runs/demo/corpus --codec wavtokenizer --audio-bpe runs/demo/audio_bpe_8192 \
      --audio-bpe runs/demo/audio_bpe_16384 --out runs/demo/report_bpe.html

--data: a corpus built by scripts/build_corpus.py (its timings are used) or a folder of audio files with transcripts
(NAME.txt, transcripts.tsv or manifest.jsonl; aligned offline with pocketsphinx). Baselines (random codes with the
same usage, k-means on log-mel, shuffled labels) use the first codec's K and frames; the k-means is fitted on
training audio (--fit-data, default: the corpus's --fit-split), never on the probed frames. Every row gets
chance-adjusted PNMI and mapping accuracy and its paired difference to the first codec. --audio-bpe (an audio BPE
trained on the first codec's codes, lm.audio_bpe) adds its tokens as frame labels (each frame labelled with the
token covering it; a row "BPE-N tokens (frame-level)") and a table of its most frequent multi-code tokens. Writes
the report and, beside it, the numbers as JSON.
"""

import argparse
import json
from pathlib import Path

from transformers.utils import logging as hf_logging

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.errors import WavTokenizerError, run_script


def parse_codecs(values: list[str]) -> dict[str, Path]:
    codecs = {}
    for value in values:
        name, _, path = value.rpartition("=") if "=" in value else ("", "", value)
        path = Path(path)
        if not (path / "config.json").exists():
            raise WavTokenizerError(f"--codec {value}: {path} is not a codec directory (no config.json)")
        codecs[name or (path.name if path.name not in ("final", "model") else f"{path.parent.name}/{path.name}")] = path
    return codecs


def _interval(metric: dict) -> str:
    return f"{metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"


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
    parser.add_argument("--drop-silence", action="store_true",
                        help="leave out every silence frame (pauses and frames outside phones)")
    parser.add_argument("--examples", type=int, default=2, help="example utterances in the report")
    parser.add_argument("--fit-data", default=None,
                        help="training audio for the k-means baseline (default: --data, when it is a corpus)")
    parser.add_argument("--fit-split", default="train", help="split of the fit data (default: train)")
    parser.add_argument("--fit-limit", type=int, default=None,
                        help="training utterances to fit on (default: as many as probed)")
    parser.add_argument("--audio-bpe", action="append", default=[], metavar="DIR", type=Path,
                        help="audio-BPE directory trained on the first codec's codes: probe its tokens as frame labels "
                             "(repeat for several)")
    parser.add_argument("--null-draws", type=int, default=3, help="circular shifts averaged for the chance level")
    args = parser.parse_args()
    # imported here, not at the top, so that a missing extra is one line (run_script), not a traceback
    from lm.probes import json_summary, run_probes, write_report
    hf_logging.disable_progress_bar()
    result = run_probes(parse_codecs(args.codec), args.data, args.split, args.limit, args.rounds, args.drop_silence,
                        args.lm, fit_source=args.fit_data, fit_split=args.fit_split, fit_limit=args.fit_limit,
                        null_draws=args.null_draws, audio_bpe=args.audio_bpe)
    write_report(result, args.out, args.examples)
    summary = json_summary(result)
    with atomic_path(args.out.with_suffix(".json"), overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2))
    for row in summary["rows"]:
        m, d = row["metrics"], row["difference_to_reference"]
        print(f"{row['name'][:44]:44s} PNMI {_interval(m['pnmi'])} - null = {_interval(m['pnmi_adjusted'])}"
              f"  mapping {_interval(m['mapping_accuracy'])} (majority {m['majority_accuracy']['value']:.3f})"
              f"  vs {summary['reference'][:20]}: {_interval(d['pnmi_adjusted'])}")
    for vocabulary in summary.get("audio_bpe", []):
        print(f"{vocabulary['name']}: {vocabulary['codes_per_token']:.2f} codes per token; multi-code tokens cover "
              f"{vocabulary['multi_code_frames']:.1%} of the frames, {vocabulary['within_one_phone']:.1%} of them lie "
              f"within one phone (chance {vocabulary['within_one_phone_chance']:.1%})")
    print(summary["intervals"])
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    run_script(main)
