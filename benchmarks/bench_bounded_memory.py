"""Peak memory of long files through the CLI, both ways: does it stay flat from 1 hour to 3 hours?

  cd benchmarks && python bench_bounded_memory.py --minutes 60 180 --out results_bounded_memory.json

Each length: a 44.1 kHz stereo 16-bit WAV (5-minute blocks alternating looped CMU ARCTIC speech and music-like chords, the
second channel a quieter copy with its own noise), written block by block. Measured in fresh processes with
`/usr/bin/time -v` (peak resident memory of the whole process, model and Python included):
- `wavtokenizer encode` (block by block past 60 s: `file_encode.py`);
- the whole-file path it replaced (`read_audio` + `Codec.encode`), for comparison (`--whole-minutes`, 1 hour by default);
- `wavtokenizer decode --stream` (the bounded-look-ahead decoder, written as it comes).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import transformers

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.audio_io import resample

from bench_long_cli import timed  # run from benchmarks/
from signals import music_like

ROOT = Path(__file__).resolve().parents[1]
RATE, BLOCK_MINUTES = 44100, 5


def write_long_file(path: Path, minutes: float) -> None:
    speech, rate = sf.read(ROOT / "assets" / "audio" / "arctic_a0007.wav", dtype="float32")
    speech = resample(torch.from_numpy(speech)[None], rate, RATE)[0].numpy()
    music = resample(music_like(60.0)[None], 24000, RATE)[0].numpy()
    rng = np.random.default_rng(0)
    block = BLOCK_MINUTES * 60 * RATE
    with sf.SoundFile(path, "w", RATE, 2, format="WAV", subtype="PCM_16") as out:  # FLAC encodes too slowly here
        for index in range(int(np.ceil(minutes / BLOCK_MINUTES))):
            source = speech if index % 2 == 0 else music
            left = np.tile(source, block // len(source) + 1)[:block]
            right = 0.7 * left + 0.002 * rng.standard_normal(block).astype(np.float32)
            out.write(np.clip(np.stack([left, right], axis=1), -1, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "wavtokenizer_hf" / "default_codec")
    parser.add_argument("--minutes", type=float, nargs="+", default=[60.0, 180.0])
    parser.add_argument("--whole-minutes", type=float, nargs="*", default=[60.0],
                        help="lengths to also run through the whole-file encode path")
    parser.add_argument("--no-decode", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "wavtokenizer_hf.cli"]
    whole = ("import sys; from wavtokenizer_hf.audio_io import read_audio; from wavtokenizer_hf.codec import Codec; "
             "w, r = read_audio(sys.argv[1]); Codec.from_pretrained(sys.argv[2]).encode(w, r).save(sys.argv[3])")
    result = {"device": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
              "model": str(args.model), "input": "44.1 kHz stereo 16-bit WAV", "runs": {}}
    with tempfile.TemporaryDirectory(prefix="bounded_") as work:
        work = Path(work)
        for minutes in args.minutes:
            long_file, codes = work / f"{minutes:g}.wav", work / f"{minutes:g}.codes.safetensors"
            write_long_file(long_file, minutes)
            runs = {"encode": timed([*cli, "encode", str(long_file), str(codes), "--model", str(args.model)])}
            if minutes in args.whole_minutes:
                runs["encode, whole file read (before)"] = timed(
                    [sys.executable, "-c", whole, str(long_file), str(args.model), str(work / "whole.codes")])
            if not args.no_decode:
                runs["decode --stream"] = timed([*cli, "decode", "--stream", str(codes), str(work / "back.wav"),
                                                 "--model", str(args.model)])
            for row in runs.values():
                row["x_real_time"] = round(minutes * 60 / row["seconds"], 1)
            result["runs"][f"{minutes:g} min"] = runs
            print(minutes, json.dumps(runs), flush=True)
            for path in work.iterdir():
                path.unlink()
    if args.out:
        with atomic_path(args.out, overwrite=True) as tmp:
            tmp.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
