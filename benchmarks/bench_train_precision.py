"""Training throughput on this CPU: steps per CPU minute of the `tiny-finetune` recipe in fp32 and under a bf16
autocast (only where the CPU reports bf16 arithmetic, `avx512_bf16` or `amx_bf16`; otherwise bf16 is emulated and
slower), at two crop/batch shapes with the same audio per step, one thread, CPU time of this process.

  python benchmarks/bench_train_precision.py --data runs/voices --steps 40 --out benchmarks/results_train_precision.json
  python benchmarks/bench_train_precision.py --data runs/voices_free --shape 1.0x8 \
      --set loss.phones=1.0 --set discriminators.use=[mpd] --set loss.gan_start_step=0   # the keep-training recipe
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from wavtokenizer_hf.training import Trainer, load_train_config

from bench_inference import cpu_model  # run as a script from benchmarks/, so its folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def measure(data: str, precision: str, segment: float, batch: int, steps: int, sets: list[str]) -> dict:
    overrides = [*sets, f"data.train={data}", "data.kinds=[speech]", "data.num_workers=0", "run.save_every=0",
                 f"run.mixed_precision={precision}", f"data.segment_seconds={segment}", f"data.batch_size={batch}",
                 "run.log_every=1"]  # after the caller's, so these win
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(load_train_config("tiny-finetune", overrides), Path(out),
                          init_from=str(ROOT / "wavtokenizer_hf" / "default_codec"))
        trainer.fit(3)  # warm-up: allocations, first-call overheads
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        trainer.fit(3 + steps)
        cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
        records = [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]
        mel = [r["mel"] for r in records if "mel" in r and "event" not in r][-steps:]
        trainer.close()
    return {"precision": precision, "segment_seconds": segment, "batch_size": batch, "steps": steps,
            "steps_per_cpu_minute": round(steps / cpu * 60, 1), "cpu_seconds_per_step": round(cpu / steps, 3),
            "wall_seconds_per_step": round(wall / steps, 3), "mean_mel_loss": round(sum(mel) / len(mel), 4)}


def parse_shape(text: str) -> tuple[float, int]:
    try:
        seconds, batch = text.lower().split("x")
        return float(seconds), int(batch)
    except ValueError:
        raise SystemExit(f"bench_train_precision: --shape {text!r}: expected SECONDSxBATCH, e.g. 1.0x8") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--shape", action="append", default=None, metavar="SECONDSxBATCH",
                        help="crop seconds x batch, repeatable (default: 1.0x8 and 0.5x16, the same audio per step)")
    parser.add_argument("--set", action="append", default=[], dest="sets", metavar="SECTION.KEY=VALUE",
                        help="a further training setting, repeatable (the recipe measured, e.g. loss.phones=1.0)")
    parser.add_argument("--one", nargs=3, default=None, help=argparse.SUPPRESS)  # precision segment batch
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.one:  # accelerate fixes the precision once per process: each measurement runs in its own
        precision, segment, batch = args.one
        print("RESULT " + json.dumps(measure(args.data, precision, float(segment), int(batch), args.steps,
                                             args.sets)))
        return
    precisions = ["no", "bf16"] if cpu_has_bf16() else ["no"]
    shapes = [parse_shape(text) for text in args.shape] if args.shape else [(1.0, 8), (0.5, 16)]
    rows = []
    for segment, batch in shapes:
        for precision in precisions:
            done = subprocess.run([sys.executable, __file__, "--data", args.data, "--steps", str(args.steps),
                                   *[f"--set={item}" for item in args.sets], "--one", precision, str(segment),
                                   str(batch)], capture_output=True, text=True,
                                  check=True)
            rows.append(json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:]))
            print(rows[-1], flush=True)
    result = {"rows": rows, "settings": args.sets, "cpu": cpu_model(), "cpu_has_bf16": cpu_has_bf16(), "threads": 1,
              "torch": torch.__version__}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
