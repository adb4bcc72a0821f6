"""Train or fine-tune a WavTokenizer codec; run plainly, with `accelerate launch` on GPUs or `torchrun` on CPUs (DDP).

  python scripts/train_codec.py --preset tiny --out runs/tiny --set data.train=runs/demo/corpus
  accelerate launch --num_processes 8 scripts/train_codec.py --preset paper-75 --out runs/p75 --set data.train=DATA
  torchrun --nproc_per_node 2 scripts/train_codec.py --preset tiny --out runs/ddp --set data.train=runs/demo/corpus
  python scripts/train_codec.py --preset paper-75 --init-from converted-large-75 --out runs/ft --set data.train=DATA

Rerunning the same command resumes from `OUT/checkpoint.pt`; a second run on a folder that a live run uses is
refused. The codec is exported to `OUT/final/` (stock transformers loads it).
"""

import argparse
from pathlib import Path

from transformers.utils import logging as hf_logging

from wavtokenizer_hf.errors import run_script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", help="tiny, tiny-finetune, paper-75, paper-40, or a YAML path")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="override preset values")
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoint, log.jsonl, final/)")
    parser.add_argument("--init-from", default=None, help="HF codec directory to fine-tune (converted or trained)")
    parser.add_argument("--discriminators-from", default=None, help="checkpoint.pt whose discriminators to reuse")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many steps (default: preset; 0 exports the starting codec)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop after this many minutes on run.clock (wall time, or CPU time with run.clock=cpu)")
    args = parser.parse_args()
    # imported here, not at the top, so that a missing extra is one line (run_script), not a traceback
    from wavtokenizer_hf.training import Trainer, load_train_config
    hf_logging.disable_progress_bar()
    cfg = load_train_config(args.preset, args.set)
    trainer = Trainer(cfg, args.out, init_from=args.init_from, discriminators_from=args.discriminators_from)
    last = trainer.fit(args.max_steps, max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    if trainer.accelerator.is_main_process:
        path = trainer.export("final")
        print(f"step {trainer.step}: mel {last.get('mel', float('nan')):.4f}; exported {path}")
    trainer.close()
    return 0


if __name__ == "__main__":
    run_script(main)
