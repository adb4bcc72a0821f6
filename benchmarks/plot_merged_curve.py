"""Quality against minutes of training from one merged evaluation (`evaluate_codec.py --merge ...`): each codec
column is a snapshot, given its minutes on the command line. Writes the curve's numbers as JSON and one figure.

  python benchmarks/plot_merged_curve.py runs/val_merged --point default_codec=0 --point step0001404=15 ... \
      --out benchmarks/default_codec_curve.png --json benchmarks/results_default_codec_curve.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.curves import plot_comparison
from wavtokenizer_hf.errors import WavTokenizerError, run_script

KEYS = ("cer_capped", "wer_capped", "stoi", "vuv_f1", "f0_gross_error", "phase_advance_error")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluation", type=Path, help="a merged evaluation's --out folder")
    parser.add_argument("--point", action="append", required=True, help="CODEC_NAME=MINUTES (repeatable, in order)")
    parser.add_argument("--label", default="", help="the curve's name in the legend")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    results = json.loads((args.evaluation / "evaluation.json").read_text())
    rows = []
    for point in args.point:
        name, _, minutes = point.rpartition("=")
        if name not in results["codecs"]:
            raise WavTokenizerError(f"no codec '{name}' in {args.evaluation} ({', '.join(results['codecs'])})")
        summary = results["codecs"][name]["summary"]
        rows.append({"codec": name, "minutes": float(minutes), **{key: summary.get(key) for key in KEYS}})
    with atomic_path(args.json, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps({"evaluation": str(args.evaluation), "utterances": results["utterances"],
                                         "recognizer": results.get("recognizer"), "points": rows}, indent=2))
    plot_comparison({args.label: rows}, args.out, KEYS, xlabel="CPU minutes of fine-tuning")
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    run_script(main)
