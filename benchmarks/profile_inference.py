"""Where the time goes: torch profiler tables of this package's exact encode and decode (full-size 75 tokens/s
model, random weights, one clip), to see what bounds an exact fp32 speed-up.

  python benchmarks/profile_inference.py --seconds 10 --rows 8
"""

import argparse

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import WavTokenizerConfig, WavTokenizerModel

from wavtokenizer_hf.inference import FastWavTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rows", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = WavTokenizerModel(WavTokenizerConfig(upsampling_ratios=[8, 5, 4, 2])).eval()
    fast = FastWavTokenizer(model)
    audio = torch.randn(1, int(args.seconds * 24000)) * 0.1
    with torch.inference_mode():
        codes, frames = fast.encode(audio)
        fast.decode(codes, frames)  # warm-up
        for name, run in (("encode", lambda: fast.encode(audio)), ("decode", lambda: fast.decode(codes, frames))):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run()
            print(f"== {name}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
