"""Windowed encode/decode of long audio: agreement with whole-file codes on real recordings, mel distance between
windowed and whole-file decodes, and peak memory of a long synthetic file.

  python benchmarks/bench_long_audio.py --model wavtokenizer --data ../shared/data/real_speech --window 10 --context 2
"""

import argparse
import json
import resource
import time
from pathlib import Path

import torch
from transformers import AutoModel

from wavtokenizer_hf.evaluation import load_test_set
from wavtokenizer_hf.evaluation.spectral import mel_distance
from wavtokenizer_hf.inference import FastWavTokenizer, decode_windowed, encode_windowed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("wavtokenizer"))
    parser.add_argument("--data", type=Path, required=True, help="folder of recordings (or a corpus)")
    parser.add_argument("--window", type=float, nargs="+", default=[10.0])
    parser.add_argument("--context", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--long-minutes", type=float, default=0.0, help="also time a synthetic file this long")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    fast = FastWavTokenizer(AutoModel.from_pretrained(args.model).eval())
    utterances = load_test_set(args.data)
    joined = torch.cat([u.waveform for u in utterances])  # one long recording made of all of them
    whole_codes = fast.encode_list([joined])[0]
    whole_audio = fast.decode_list([whole_codes])[0]
    rows = []
    for window in args.window:
        for context in args.context:
            codes = encode_windowed(fast, joined, window, context)
            audio = decode_windowed(fast, whole_codes, window, context)
            n = min(audio.numel(), whole_audio.numel())
            rows.append({"window_s": window, "context_s": context, "frames": whole_codes.numel(),
                         "code_agreement": float((codes == whole_codes).float().mean()),
                         "mel_distance_windowed_vs_whole": mel_distance(whole_audio[:n], audio[:n], 24000)})
            print(json.dumps(rows[-1]), flush=True)
    result = {"audio_seconds": round(joined.numel() / 24000, 1), "rows": rows}
    if args.long_minutes:
        long = torch.randn(int(args.long_minutes * 60 * 24000)) * 0.1
        start = time.perf_counter()
        codes = encode_windowed(fast, long, args.window[0], args.context[-1])
        audio = decode_windowed(fast, codes, args.window[0], args.context[-1])
        result["long"] = {"minutes": args.long_minutes, "seconds": round(time.perf_counter() - start, 1),
                          "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                          "samples_out": audio.numel()}
        print(json.dumps(result["long"]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
