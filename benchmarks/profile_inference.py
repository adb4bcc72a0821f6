"""Where the time goes: torch profiler tables of this package's exact encode and decode (full-size 75 tokens/s
model, random weights, one clip), and the arithmetic each does (FLOPs counted by `torch.utils.flop_counter`), to
see what bounds an exact fp32 speed-up: a pass that already runs near the cores' fp32 peak cannot get much faster.

  python benchmarks/profile_inference.py --seconds 10 --rows 8
"""

import argparse
import timeit

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode
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
        a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
        seconds = min(timeit.repeat(lambda: a @ b, number=1, repeat=5))
        print(f"== reference: a 4096 x 4096 fp32 matrix product runs at {2 * 4096**3 / 1e9 / seconds:.0f} GFLOP/s "
              f"on {torch.get_num_threads()} threads (this machine's practical fp32 peak)")
        codes, frames = fast.encode(audio)
        fast.decode(codes, frames)  # warm-up
        for name, run in (("encode", lambda: fast.encode(audio)), ("decode", lambda: fast.decode(codes, frames))):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run()
            with FlopCounterMode(display=False) as counter:
                run()
            seconds = min(timeit.repeat(run, number=1, repeat=3))
            flops = counter.get_total_flops()
            print(f"== {name}: {flops / 1e9:.1f} GFLOP counted (matrix products and convolutions) in {seconds:.3f} s "
                  f"= {flops / 1e9 / seconds:.0f} GFLOP/s on {torch.get_num_threads()} threads")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
