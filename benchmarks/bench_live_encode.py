"""The live encoder (`Codec.stream_encoder`) on this machine: for each chunk size, the real-time factor (audio seconds
per compute second), the mean and worst compute time per push, and the latency of a code (the chunk, the encoder's
look-ahead, and the compute of one push), checking that the codes equal the offline encode.

  python benchmarks/bench_live_encode.py --seconds 30 --out benchmarks/results_live_encode.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.codec import Codec
from wavtokenizer_hf.default_codec import default_codec_dir
from wavtokenizer_hf.errors import run_script

from signals import RATE, alternating  # run as a script from benchmarks/

SPEECH = Path(__file__).resolve().parents[1] / "assets" / "audio" / "arctic_a0007.wav"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--chunks-ms", type=float, nargs="+", default=[10, 20, 40, 80, 160, 320])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import soundfile as sf

    from wavtokenizer_hf.audio_io import resample

    codec = Codec.from_pretrained(default_codec_dir())
    wave, rate = sf.read(SPEECH, dtype="float32")
    audio = alternating(resample(torch.from_numpy(wave)[None], rate, RATE)[0], args.seconds)
    offline = codec.encode(audio, RATE).audio_codes[0]
    rows = []
    for ms in args.chunks_ms:
        size = max(1, round(ms / 1000 * RATE))
        live, parts, times = codec.stream_encoder(RATE), [], []
        for start in range(0, audio.numel(), size):
            began = time.perf_counter()
            parts.append(live.push(audio[start: start + size]))
            times.append(time.perf_counter() - began)
        parts.append(live.flush())
        compute = sum(times)
        lookahead_ms = 1000 * live.lookahead_samples / RATE
        rows.append({"chunk_ms": ms, "exact": bool(torch.equal(torch.cat(parts), offline)),
                     "x_real_time": round(audio.numel() / RATE / compute, 2),
                     "mean_push_ms": round(1000 * compute / len(times), 2), "worst_push_ms": round(1000 * max(times), 2),
                     "lookahead_ms": round(lookahead_ms, 1),
                     "latency_ms": round(ms + lookahead_ms + 1000 * compute / len(times), 1)})
        print(json.dumps(rows[-1]), flush=True)
    result = {"command": "python benchmarks/bench_live_encode.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "seconds": args.seconds, "rows": rows}
    with atomic_path(args.out, overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    run_script(main)
