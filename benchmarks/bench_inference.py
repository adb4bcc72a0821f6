"""Encode/decode throughput: this package's batched exact path against the stock transformers model, same weights,
same run. Full-size 75 tokens/s model with random weights (speed does not depend on the weights).

  python benchmarks/bench_inference.py --seconds 10 --batch-sizes 1 8 --repeats 3 --out benchmarks/results_cpu.json
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import transformers
from transformers import WavTokenizerConfig, WavTokenizerModel

from wavtokenizer_hf.inference import FastWavTokenizer


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = WavTokenizerConfig(upsampling_ratios=[8, 5, 4, 2])  # full-size 75 tokens/s
    model = WavTokenizerModel(config).eval().to(args.device)
    with torch.no_grad():
        model.encoder_model.quantizer.codebook.embed.normal_()
    fast = FastWavTokenizer(model)
    rows = []
    for seconds in args.seconds:
        for batch in args.batch_sizes:
            audio = torch.randn(batch, int(seconds * 24000), device=args.device) * 0.1
            lengths = torch.full((batch,), audio.shape[-1], dtype=torch.long)
            with torch.inference_mode():
                stock_codes = model.encode(audio[:, None]).audio_codes[:, 0]
                fast_codes, frames = fast.encode(audio, lengths)
                same = float((stock_codes == fast_codes).float().mean())
                stock_enc = timed(lambda: model.encode(audio[:, None]), args.repeats)
                fast_enc = timed(lambda: fast.encode(audio, lengths), args.repeats)
                stock_dec = timed(lambda: model.decode(stock_codes[:, None]), args.repeats)
                fast_dec = timed(lambda: fast.decode(stock_codes, frames), args.repeats)
            total = seconds * batch
            row = {"clip_seconds": seconds, "batch": batch, "codes_identical": same,
                   "encode_x_realtime_stock": total / stock_enc, "encode_x_realtime_ours": total / fast_enc,
                   "decode_x_realtime_stock": total / stock_dec, "decode_x_realtime_ours": total / fast_dec}
            row["encode_speedup"] = row["encode_x_realtime_ours"] / row["encode_x_realtime_stock"]
            row["decode_speedup"] = row["decode_x_realtime_ours"] / row["decode_x_realtime_stock"]
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    result = {"device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
              "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "transformers": transformers.__version__, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
