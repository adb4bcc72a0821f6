"""Plot a training run's curves (codec: mel loss and held-out evaluations; LM: training and held-out loss).

  python scripts/plot_training.py runs/codec_main            # writes runs/codec_main/curves.png
  python scripts/plot_training.py runs/tts --out tts.png
"""

import argparse
import sys

from wavtokenizer_hf.curves import plot_run
from wavtokenizer_hf.errors import WavTokenizerError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a run directory of train_codec.py, train_audio_lm.py or finetune_tts.py")
    parser.add_argument("--out", default=None, help="PNG to write (default: RUN_DIR/curves.png)")
    args = parser.parse_args()
    try:
        print(plot_run(args.run_dir, args.out))
    except WavTokenizerError as err:
        print(f"plot_training: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
