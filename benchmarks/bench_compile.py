"""torch.compile on this package's exact path: speed and whether codes/audio stay the same.

  python benchmarks/bench_compile.py --seconds 10 --repeats 3 --out benchmarks/results_compile.json
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
from transformers import WavTokenizerConfig, WavTokenizerModel

from wavtokenizer_hf.inference import FastWavTokenizer

from bench_inference import timed  # run as a script from benchmarks/, so its folder is on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    model = WavTokenizerModel(WavTokenizerConfig(upsampling_ratios=[8, 5, 4, 2])).eval()
    with torch.no_grad():
        model.encoder_model.quantizer.codebook.embed.normal_()
    fast = FastWavTokenizer(model)
    audio = torch.randn(1, int(args.seconds * 24000)) * 0.1
    with torch.inference_mode():
        stock_codes = model.encode(audio[:, None]).audio_codes[:, 0]
        codes, frames = fast.encode(audio)
        reference = fast.decode(codes, frames)
        row = {"clip_seconds": args.seconds,
               "encode_x_realtime_stock": args.seconds / timed(lambda: model.encode(audio[:, None]), args.repeats),
               "encode_x_realtime_ours": args.seconds / timed(lambda: fast.encode(audio), args.repeats),
               "decode_x_realtime_stock": args.seconds / timed(lambda: model.decode(stock_codes[:, None]), args.repeats),
               "decode_x_realtime_ours": args.seconds / timed(lambda: fast.decode(codes, frames), args.repeats)}
        encode, decode = torch.compile(fast.encode, dynamic=False), torch.compile(fast.decode, dynamic=False)
        start = time.perf_counter()
        compiled_codes, _ = encode(audio)
        compiled_audio = decode(codes, frames)
        row["compile_seconds"] = time.perf_counter() - start
        row["codes_identical"] = bool(torch.equal(compiled_codes, stock_codes))
        row["audio_max_abs_diff"] = float((compiled_audio - reference).abs().max())
        row["encode_x_realtime_compiled"] = args.seconds / timed(lambda: encode(audio), args.repeats)
        row["decode_x_realtime_compiled"] = args.seconds / timed(lambda: decode(codes, frames), args.repeats)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
    if args.out:
        args.out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), **row}, indent=2))


if __name__ == "__main__":
    main()
