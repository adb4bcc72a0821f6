"""A Ray tokenization job on this machine's GPUs (one encoder actor per GPU, decoding on the CPUs): audio seconds per
second on synthetic speech-like audio, for scripts/gpu_bench.sh where the machine has Ray.

  python benchmarks/bench_ray_gpu_job.py --out OUT/ray.json [--minutes 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "wavtokenizer_hf" / "default_codec"))
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from wavtokenizer_hf.ray_tokenize import tokenize_with_ray

    work = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    seconds = 0.0
    while seconds < args.minutes * 60:
        length = float(rng.uniform(2, 15))
        t = np.arange(int(length * 24000)) / 24000
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(90, 250) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        sf.write(work / f"f{int(seconds * 1000):09d}.wav", wave.astype(np.float32), 24000)
        seconds += length
    start = time.perf_counter()
    summary = tokenize_with_ray(work, work / "out", args.model, batch_size=32, progress=False)
    wall = time.perf_counter() - start
    result = {"audio_seconds": round(seconds, 1), "wall_seconds": round(wall, 1),
              "audio_seconds_per_second": round(seconds / wall, 1), "gpus": torch.cuda.device_count(),
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", **summary}
    print(json.dumps(result))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
