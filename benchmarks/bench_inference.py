"""Encode/decode throughput and peak memory: this package's batched exact path against the stock transformers model,
same weights, same run. Full-size 75 tokens/s model with random weights (speed does not depend on the weights).

Stock and package calls alternate within each repeat, so a slow spell of a shared machine hits both sides; the
speed-up of a row is the median of the per-repeat ratios. Peak memory is the largest resident-set growth during one
call, measured in a fresh process per call (resident size sampled every millisecond on CPU; `torch.cuda.max_memory_allocated`
on GPU).

  python benchmarks/bench_inference.py --seconds 10 --batch-sizes 1 8 --repeats 5 --out benchmarks/results_cpu_10s.json
"""

import argparse
import json
import platform
import statistics
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import torch
import transformers
from transformers import WavTokenizerConfig, WavTokenizerModel

from wavtokenizer_hf.inference import FastWavTokenizer


def timed(fn: Callable, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_pair(stock: Callable, ours: Callable, repeats: int) -> tuple[float, float, float]:
    """Median seconds of each side and the median of per-repeat speed-ups (stock time / our time), alternating."""
    stock(), ours()  # warm-up
    pairs = []
    for _ in range(repeats):
        pair = []
        for fn in (stock, ours):
            start = time.perf_counter()
            fn()
            pair.append(time.perf_counter() - start)
        pairs.append(pair)
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs),
            statistics.median(p[0] / p[1] for p in pairs))


def build(device: str, tile) -> tuple[WavTokenizerModel, FastWavTokenizer]:
    torch.manual_seed(0)
    model = WavTokenizerModel(WavTokenizerConfig(upsampling_ratios=[8, 5, 4, 2])).eval().to(device)  # full size, 75/s
    with torch.no_grad():
        model.encoder_model.quantizer.codebook.embed.normal_()
    return model, FastWavTokenizer(model, tile_seconds=tile)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_probe(spec: dict) -> float:
    """Peak memory growth (MiB) of one call in this fresh process: high-water mark after the call minus the resident
    size before it (CPU), or the CUDA allocator's peak minus what was allocated before."""
    device = spec["device"]
    model, fast = build(device, spec["tile"])
    audio = torch.randn(spec["batch"], int(spec["seconds"] * 24000), device=device) * 0.1
    frames = torch.full((spec["batch"],), audio.shape[-1] // fast.hop_length, device=device)
    codes = torch.randint(0, fast.embed.shape[0], (spec["batch"], int(frames[0])), device=device)
    with torch.inference_mode():
        calls = {("encode", "stock"): lambda: model.encode(audio[:, None]),
                 ("encode", "ours"): lambda: fast.encode(audio),
                 ("decode", "stock"): lambda: model.decode(codes[:, None]),
                 ("decode", "ours"): lambda: fast.decode(codes, frames)}
        call = calls[spec["what"], spec["side"]]
        if device != "cpu":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            call()
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - base) / 2**20
        base, peak, done = _rss_bytes(), [0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                time.sleep(0.001)

        sampler = threading.Thread(target=sample)
        sampler.start()
        call()
        done.set()
        sampler.join()
        return (max(peak[0], _rss_bytes()) - base) / 2**20


def peak_memory_mb(**spec) -> float:
    out = subprocess.run([sys.executable, __file__, "--probe", json.dumps(spec)], capture_output=True, text=True,
                         check=True).stdout
    return float(out.strip().splitlines()[-1])


def cpu_model() -> str:
    """The CPU's model name and vector extensions (what the fp32 kernels can use)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    extensions = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(extensions)})" if extensions else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tile-seconds", default="auto",
                        help="the package's encoder tile length: 'auto' (2.5 s on CPU, none on GPU), 'none' or seconds")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # internal: one memory measurement
    args = parser.parse_args()
    if args.probe:
        print(memory_probe(json.loads(args.probe)))
        return
    choice = args.tile_seconds.lower()
    try:
        tile = "auto" if choice == "auto" else None if choice == "none" else float(choice)
    except ValueError:
        parser.error(f"--tile-seconds: 'auto', 'none' or a number of seconds, got {args.tile_seconds!r}")

    model, fast = build(args.device, tile)
    sync = torch.cuda.synchronize if args.device != "cpu" else (lambda: None)
    rows = []
    for seconds in args.seconds:
        for batch in args.batch_sizes:
            audio = torch.randn(batch, int(seconds * 24000), device=args.device) * 0.1
            lengths = torch.full((batch,), audio.shape[-1], dtype=torch.long)
            with torch.inference_mode():
                stock_codes = model.encode(audio[:, None]).audio_codes[:, 0]
                fast_codes, frames = fast.encode(audio, lengths)
                same = float((stock_codes == fast_codes).float().mean())
                stock_audio = model.decode(stock_codes[:, None]).audio_values
                fast_audio = fast.decode(stock_codes, frames)
                audio_diff = float((stock_audio.reshape(batch, -1) - fast_audio.reshape(batch, -1)).abs().max())

                def run(fn: Callable) -> Callable:
                    return lambda: (fn(), sync())

                enc = timed_pair(run(lambda: model.encode(audio[:, None])), run(lambda: fast.encode(audio, lengths)),
                                 args.repeats)
                dec = timed_pair(run(lambda: model.decode(stock_codes[:, None])),
                                 run(lambda: fast.decode(stock_codes, frames)), args.repeats)
            memory = {f"{what}_peak_mb_{side}": peak_memory_mb(device=args.device, tile=tile, seconds=seconds,
                                                               batch=batch, what=what, side=side)
                      for what in ("encode", "decode") for side in ("stock", "ours")}
            total = seconds * batch
            row = {"clip_seconds": seconds, "batch": batch, "codes_identical": same, "audio_max_abs_diff": audio_diff,
                   "encode_x_realtime_stock": total / enc[0], "encode_x_realtime_ours": total / enc[1],
                   "encode_speedup": enc[2],
                   "decode_x_realtime_stock": total / dec[0], "decode_x_realtime_ours": total / dec[1],
                   "decode_speedup": dec[2], **memory}
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    result = {"device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
              "cpu": cpu_model(), "threads": torch.get_num_threads(),
              "tile_seconds": fast.tile_frames and fast.tile_frames * fast.conv_stride / fast.config.sampling_rate,
              "repeats": args.repeats, "torch": torch.__version__, "transformers": transformers.__version__,
              "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
