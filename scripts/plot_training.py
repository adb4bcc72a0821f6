"""Plot a training run's curves (codec: mel loss and held-out evaluations; LM: training and held-out loss), or
score a codec run's snapshots on a test set and plot quality against minutes of training.

  python scripts/plot_training.py runs/codec_main            # writes runs/codec_main/curves.png
  python scripts/plot_training.py runs/tts --out tts.png
  python scripts/plot_training.py runs/tiny --snapshots-on runs/corpus --split validation --limit 30
      # scores runs/tiny/step*/ and final/: writes runs/tiny/quality_curve.{png,json}
"""

import argparse
import json
from pathlib import Path

from transformers.utils import logging as hf_logging

from wavtokenizer_hf.curves import plot_run, plot_scores
from wavtokenizer_hf.errors import WavTokenizerError, run_script
from wavtokenizer_hf.listing import or_na
from wavtokenizer_hf.evaluation import load_test_set
from wavtokenizer_hf.evaluation.snapshots import best_snapshot, score_snapshots


def snapshot_curve(run_dir: Path, data: Path, split: str, limit: int | None, speech_only: bool,
                   out: Path | None) -> Path:
    if not (run_dir / "log.jsonl").exists():
        raise WavTokenizerError(f"{run_dir}: no log.jsonl; pass a codec run directory of train_codec.py")
    utterances = load_test_set(data, split, limit, speech_only)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    last_step = max((r["step"] for r in log if "step" in r), default=None)
    rows = score_snapshots(run_dir, utterances, final_step=last_step)
    (run_dir / "quality_curve.json").write_text(json.dumps(rows, indent=1))
    for row in rows:
        print(f"step {row['step']:>6}  {row['minutes']:6.1f} min  CER {or_na(row['cer'], '{:.1%}')}  "
              f"WER {or_na(row['wer'], '{:.1%}')}  STOI {row['stoi']:.3f}  mel distance {row['mel_distance']:.3f}")
    best = best_snapshot(rows)
    print(f"best snapshot on the {split} split: step {best['step']} (lowest capped CER, then capped WER; STOI without a "
          "recogniser)")
    keys = ("cer", "stoi") if rows[0].get("cer") is not None else ("stoi", "mel_distance")
    return plot_scores(rows, out or run_dir / "quality_curve.png", keys=keys, title=f"{split} split")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run directory of train_codec.py, train_audio_lm.py or finetune_tts.py")
    parser.add_argument("--out", type=Path, default=None, help="PNG to write (default: in RUN_DIR)")
    parser.add_argument("--snapshots-on", type=Path, default=None, metavar="DATA",
                        help="score the codec run's snapshots on this corpus or audio folder")
    parser.add_argument("--split", default="validation", help="choose snapshots on a split you do not report")
    parser.add_argument("--limit", type=int, default=None, help="at most this many items")
    parser.add_argument("--speech-only", action="store_true", help="skip music/noise rows of a corpus")
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    if args.snapshots_on:
        print(snapshot_curve(args.run_dir, args.snapshots_on, args.split, args.limit, args.speech_only,
                             args.out))
    else:
        print(plot_run(args.run_dir, args.out))
    return 0


if __name__ == "__main__":
    run_script(main)
