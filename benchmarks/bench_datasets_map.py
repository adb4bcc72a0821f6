"""`datasets.map` tokenization throughput: this package's callable (2 processes) against a plain per-row loop over
the stock model (1 process, as a user would write it first), same codec, same rows.

  python benchmarks/bench_datasets_map.py --model wavtokenizer_hf/default_codec --data runs/demo/corpus --split train \
      --out benchmarks/results_datasets_map.json
"""

import argparse
import json
import time
from pathlib import Path

import torch
from datasets import load_from_disk
from transformers import AutoModel

from wavtokenizer_hf.tokenization import DatasetTokenizer, decode_audio_value

from bench_inference import cpu_model  # run as a script from benchmarks/, so its folder is on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="wavtokenizer_hf/default_codec")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = load_from_disk(args.data)[args.split]

    start = time.perf_counter()
    ours = rows.map(DatasetTokenizer(args.model), batched=True, batch_size=16, with_rank=True,
                    num_proc=args.num_proc, remove_columns=["audio"])
    ours_seconds = time.perf_counter() - start
    audio_seconds = sum(ours["audio_seconds"])

    model = AutoModel.from_pretrained(args.model).eval()

    def stock(row):
        data, _ = decode_audio_value(row["audio"])
        with torch.inference_mode():
            codes = model.encode(torch.from_numpy(data)[None, None]).audio_codes[0, 0]
        return {"audio_codes": codes.numpy().astype("int16")}

    start = time.perf_counter()
    rows.map(stock, remove_columns=["audio"])
    stock_seconds = time.perf_counter() - start
    result = {"rows": len(rows), "audio_seconds": round(audio_seconds, 1), "num_proc": args.num_proc,
              "ours_x_realtime": round(audio_seconds / ours_seconds, 1),
              "stock_loop_x_realtime": round(audio_seconds / stock_seconds, 1),
              "speedup": round(stock_seconds / ours_seconds, 2), "cpu": cpu_model(), "torch": torch.__version__}
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
