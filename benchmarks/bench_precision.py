"""Low-precision encoding: code agreement with fp32, why codes flip, and whether a mixed recipe keeps them.

  python benchmarks/bench_precision.py --model wavtokenizer_hf/default_codec --data runs/demo/corpus --limit 40

For each precision of `FastWavTokenizer.encode` (bf16 / fp16: encoder under autocast, nearest-code search in fp32;
*-all: the search in low precision too, as a model cast with `.to(torch.bfloat16)` does) it reports the share of
frames whose code equals the fp32 code, and the speed. The analysis: the nearest-code search compares
d(x, e) = |x|^2 - 2 x.e + |e|^2 across codes; in a format with unit round-off u the terms carry errors of about
u |x|^2, so a frame whose two best distances differ by less than that relative gap can flip. The script measures
the relative gap (d2 - d1) / |x|^2 per frame and prints the share below each format's round-off.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModel

from wavtokenizer_hf.evaluation import load_test_set
from wavtokenizer_hf.inference import PRECISIONS, FastWavTokenizer

ROUND_OFF = {"bf16": 2.0**-8, "fp16": 2.0**-11}


def relative_gaps(fast: FastWavTokenizer, audio: torch.Tensor) -> torch.Tensor:
    """(d2 - d1) / |x|^2 of every frame, in fp32/fp64."""
    with torch.inference_mode():
        latents, _ = fast.encode_latents(audio[None], torch.tensor([audio.numel()]))
        flat = latents[0].T.double()
        embed = fast.embed.double()
        distances = torch.cdist(flat, embed).pow(2)
        best = torch.topk(distances, 2, largest=False).values
        return ((best[:, 1] - best[:, 0]) / flat.pow(2).sum(1)).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("wavtokenizer_hf/default_codec"))
    parser.add_argument("--data", type=Path, required=True, help="a corpus (test split) or an audio folder")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    fast = FastWavTokenizer(AutoModel.from_pretrained(args.model).eval())
    audio = [u.waveform for u in load_test_set(args.data, limit=args.limit)]
    seconds = sum(a.numel() for a in audio) / 24000
    rows, reference = [], None
    for precision in PRECISIONS:
        start = time.perf_counter()
        codes = [fast.encode_list([a], precision)[0] for a in audio]
        elapsed = time.perf_counter() - start
        flat = torch.cat(codes)
        reference = flat if reference is None else reference
        rows.append({"precision": precision, "code_agreement": float((flat == reference).float().mean()),
                     "real_time_factor_x": round(seconds / elapsed, 1)})
        print(json.dumps(rows[-1]), flush=True)
    gaps = torch.cat([relative_gaps(fast, a) for a in audio])
    analysis = {"frames": int(gaps.numel()), "median_relative_gap": float(gaps.median()),
                **{f"share_below_{name}_roundoff": float((gaps < u).float().mean()) for name, u in ROUND_OFF.items()},
                **{f"share_below_4x_{name}_roundoff": float((gaps < 4 * u).float().mean()) for name, u in ROUND_OFF.items()}}
    print(json.dumps(analysis))
    result = {"model": str(args.model), "audio_seconds": round(seconds, 1), "device": str(fast.device),
              "torch": torch.__version__, "rows": rows, "gap_analysis": analysis}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
