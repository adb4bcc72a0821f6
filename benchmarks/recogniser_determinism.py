"""How reproducible Whisper's transcripts of codec outputs are: the same reconstructions read under each CTranslate2
instruction set (`CT2_FORCE_CPU_ISA`), in int8 and float32, and reconstructions decoded with 1 and 2 torch threads
(audio differing by ~1e-6) read by each compute type. Counts transcripts that differ; writes JSON.

  python benchmarks/recogniser_determinism.py --data ../shared/data/tts_samples --limit 24 \
      --out benchmarks/results_recogniser_determinism.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.errors import run_script

ISAS = ("AVX512", "AVX2", "AVX", "GENERIC")
COMPUTE = ("int8", "float32")
READ = """
import json, sys, numpy as np, torch
from wavtokenizer_hf.evaluation import whisper
whisper.SETTINGS["compute_type"] = sys.argv[2]
waves = np.load(sys.argv[1])
print(json.dumps([whisper.transcribe(torch.from_numpy(waves[k]), 24000) for k in sorted(waves.files)]))
"""


def reconstructions(data: Path, limit: int, threads: int) -> list[np.ndarray]:
    from wavtokenizer_hf.default_codec import default_codec_dir
    from wavtokenizer_hf.evaluation import CodecReconstructor, load_test_set

    torch.set_num_threads(threads)
    codec = CodecReconstructor(default_codec_dir())
    return [codec.reconstruct(u.waveform)[0].numpy() for u in load_test_set(data, limit=limit, quiet=True)]


def read(waves: list[np.ndarray], compute: str, isa: str | None) -> list[str]:
    """Transcripts in a fresh process (the instruction set is read once per process)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "waves.npz"
        np.savez(path, **{f"x{i:04d}": w for i, w in enumerate(waves)})
        env = {**os.environ}
        env.pop("CT2_FORCE_CPU_ISA", None)
        if isa:
            env["CT2_FORCE_CPU_ISA"] = isa
        done = subprocess.run([sys.executable, "-c", READ, str(path), compute], env=env, capture_output=True,
                              text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    one, two = reconstructions(args.data, args.limit, 1), reconstructions(args.data, args.limit, 2)
    isas = ISAS if platform.machine().lower() in ("x86_64", "amd64") else (None,)
    from wavtokenizer_hf.evaluation.provenance import cpu

    results: dict = {"utterances": len(one), "cpu": cpu(),
                     "max_abs_difference_1_vs_2_threads": max(float(np.abs(a - b).max()) for a, b in zip(one, two))}
    for compute in COMPUTE:
        texts = {isa or "auto": read(one, compute, isa) for isa in isas}
        base = texts.get("AVX2", next(iter(texts.values())))
        results[f"{compute}_differing_from_AVX2_by_isa"] = {isa: sum(a != b for a, b in zip(t, base))
                                                          for isa, t in texts.items()}
        results[f"{compute}_differing_1_vs_2_threads"] = sum(a != b for a, b in zip(read(two, compute, "AVX2"),
                                                                                    texts.get("AVX2", base)))
        print(compute, json.dumps(results), flush=True)
    with atomic_path(args.out, overwrite=True) as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    run_script(main)
