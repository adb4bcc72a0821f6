"""Our recipe versus the authors' (every fix switched off) at equal steps: codebook usage and mel distance on a
held-out split, side by side. Writes OUT/comparison.{json,md}.

  python scripts/compare_recipes.py --data runs/corpus3h --steps 300 --out runs/compare
"""

import argparse
import json
import sys
from pathlib import Path

from transformers.utils import logging as hf_logging

from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.evaluation import CodecReconstructor, evaluate, load_test_set
from wavtokenizer_hf.training import Trainer, load_train_config

ORIGINAL = ["fixes.train_mbd=false", "fixes.reseed_dead_codes=false", "fixes.kmeans_on_training_data=false",
            "fixes.single_ema_update=false", "fixes.nonfinite_guard=false", "optim.grad_clip=null"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="saved corpus with train and test splits")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--set", nargs="*", default=[], help="overrides applied to both runs")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    try:
        utterances = load_test_set(args.data, args.split)
        rows = {}
        for name, extra in (("ours", []), ("original recipe", ORIGINAL)):
            cfg = load_train_config(args.preset, [f"data.train={args.data}", f"optim.max_steps={args.steps}",
                                                  *args.set, *extra])
            trainer = Trainer(cfg, args.out / name.replace(" ", "_"))
            trainer.fit(args.steps)
            exported = trainer.export("final")
            summary = evaluate([CodecReconstructor(exported)], utterances, with_asr=False, with_mos=False)
            rows[name] = summary["codecs"][exported.name]["summary"]
    except WavTokenizerError as err:
        print(f"compare_recipes: error: {err}", file=sys.stderr)
        return 2
    keys = [("codebook_used", "{:.1%}"), ("code_perplexity", "{:.0f}"), ("mel_distance", "{:.3f}"), ("stoi", "{:.3f}")]
    lines = [f"{args.steps} steps of `{args.preset}` on {args.data}, evaluated on its `{args.split}` split", "",
             "| recipe | " + " | ".join(k for k, _ in keys) + " |", "| --- |" + " --- |" * len(keys)]
    for name, summary in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt.format(summary[k]) for k, fmt in keys) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(json.dumps(rows, indent=2))
    (args.out / "comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
