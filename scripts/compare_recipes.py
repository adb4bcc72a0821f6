"""Our recipe versus the authors' (every fix switched off) at equal steps: codebook usage, mel distance, STOI and
voicing on a held-out split, plus the discriminators' own losses, side by side at each evaluation step.
Writes OUT/comparison.{json,md}.

  python scripts/compare_recipes.py --data runs/corpus4h --eval-at 300 700 --set loss.gan_start_step=300 \
      --out runs/compare

With the GAN from step 300 (`tiny` itself starts it at 1200), an evaluation at 300 shows the mel-only phase (where
re-seeding, k-means on training data and clipping act) and later ones the GAN phase (where the DAC
discriminator's training and the single EMA update per step act too).
"""

import argparse
import json
from pathlib import Path

import numpy as np
from transformers.utils import logging as hf_logging

from wavtokenizer_hf.errors import run_script
from wavtokenizer_hf.listing import or_na, read_jsonl
from wavtokenizer_hf.evaluation import CodecReconstructor, evaluate, load_test_set

ORIGINAL = ["fixes.train_dac=false", "fixes.reseed_dead_codes=false", "fixes.kmeans_on_training_data=false",
            "fixes.single_ema_update=false", "fixes.nonfinite_guard=false", "optim.grad_clip=null"]
RECIPES = {"ours": [], "original recipe": ORIGINAL}
METRICS = [("codebook_used", "codebook used", "{:.1%}"), ("code_perplexity", "code perplexity", "{:.0f}"),
           ("mel_distance", "mel distance", "{:.3f}"), ("stoi", "STOI", "{:.3f}"), ("vuv_f1", "V/UV F1", "{:.3f}"),
           ("f0_rmse_cents", "F0 RMSE (cents)", "{:.0f}")]
DISCRIMINATOR_LOGS = [("d_mpd", "MPD hinge"), ("d_mrd", "MRD hinge"), ("d_dac", "DAC least squares")]
LOG_WINDOW = 50  # steps over which the logged discriminator losses are averaged before each evaluation


def recent_means(log_path: Path, step: int, keys: list[str]) -> dict[str, float | None]:
    """Mean of each logged loss over the `LOG_WINDOW` steps up to `step` (None before the GAN starts)."""
    records = read_jsonl(log_path)
    window = [r for r in records if "step" in r and "event" not in r and step - LOG_WINDOW < r["step"] <= step]
    means = {}
    for key in keys:
        values = [r[key] for r in window if key in r]
        means[key] = float(np.mean(values)) if values else None
    return means


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="saved corpus with train and test splits")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--eval-at", type=int, nargs="+", default=[300], help="steps at which both are evaluated")
    parser.add_argument("--set", nargs="*", default=[], help="overrides applied to both runs")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first N items of the split")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    args = parser.parse_args()
    # imported here, not at the top, so that a missing extra is one line (run_script), not a traceback
    from wavtokenizer_hf.training import Trainer, load_train_config
    steps = sorted(set(args.eval_at))
    if steps[0] < 1:
        parser.error(f"--eval-at takes positive step numbers, got {args.eval_at}")
    hf_logging.disable_progress_bar()
    utterances = load_test_set(args.data, args.split, limit=args.limit)
    rows: dict[str, dict[int, dict]] = {}
    for name, extra in RECIPES.items():
        cfg = load_train_config(args.preset, [f"data.train={args.data}", f"optim.max_steps={steps[-1]}",
                                              *args.set, *extra])
        trainer = Trainer(cfg, args.out / name.replace(" ", "_"))
        rows[name] = {}
        for step in steps:
            trainer.fit(step)
            exported = trainer.export(f"step{step:07d}")
            summary = evaluate([CodecReconstructor(exported)], utterances, with_asr=False, with_mos=False)
            rows[name][step] = {**summary["codecs"][exported.name]["summary"],
                                **recent_means(trainer.log_path, step, [k for k, _ in DISCRIMINATOR_LOGS])}
    columns = METRICS + [(key, f"{label} (last {LOG_WINDOW} steps)", "{:.2f}") for key, label in DISCRIMINATOR_LOGS]
    lines = [f"`{args.preset}` preset on {args.data}, evaluated on {len(utterances)} items of its `{args.split}` "
             f"split; extra settings: {' '.join(args.set) or 'none'}", "",
             "| step | recipe | " + " | ".join(label for _, label, _ in columns) + " |",
             "| --- | --- |" + " --- |" * len(columns)]
    for step in steps:
        for name in RECIPES:
            values = rows[name][step]
            lines.append(f"| {step} | {name} | " + " | ".join(or_na(values.get(k), p) for k, _, p in columns) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(json.dumps(rows, indent=2))
    (args.out / "comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    run_script(main)
