"""Long files through the CLI (encode, decode, reconstruct): wall time, x real time and peak resident memory of each
command (`/usr/bin/time -v`), and the streaming encoder's code agreement with whole-file encoding on speech and on
music-like audio.

  python benchmarks/bench_long_cli.py --model wavtokenizer_hf/default_codec --minutes 60 \
      --speech ../shared/data/real_speech/cmu_arctic --out benchmarks/results_long_cli.json
  python benchmarks/bench_long_cli.py --full-size --minutes 20 ...   # a full-size 75 tokens/s model, random weights

Each command runs in a fresh process; the work folder (a temporary directory) is removed at the end.
"""

import argparse
import json
import math
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch
import transformers
from transformers import AutoModel, WavTokenizerConfig, WavTokenizerModel

from wavtokenizer_hf.evaluation import load_test_set
from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.inference import FastWavTokenizer, encode_windowed
from wavtokenizer_hf.long_audio import StreamingEncoder

from signals import RATE, alternating, music_like  # run as a script from benchmarks/, so its folder is on sys.path



def timed(command: list[str]) -> dict:
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_gb": round(peak_kb / 2**20, 2)}


def agreement(fast: FastWavTokenizer, audio: torch.Tensor) -> dict:
    whole = fast.encode_list([audio])[0]
    streamed = StreamingEncoder(fast).encode(audio)
    windowed = encode_windowed(fast, audio, 30.0, 2.0)
    return {"seconds": round(audio.numel() / RATE, 1), "frames": whole.numel(),
            "streaming_equal_to_whole": float((streamed == whole).float().mean()),
            "windowed_30s_2s_equal_to_whole": float((windowed == whole).float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("wavtokenizer"))
    parser.add_argument("--full-size", action="store_true", help="a full-size 75 tokens/s model with random weights")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--speech", type=Path, required=True, help="a folder of speech recordings to loop")
    parser.add_argument("--agreement-seconds", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="long_cli_") as work:
        run(args, Path(work))


def run(args: argparse.Namespace, work: Path) -> None:
    model_dir = args.model
    if args.full_size:
        model_dir = work / "full75"
        torch.manual_seed(0)
        full = WavTokenizerModel(WavTokenizerConfig(upsampling_ratios=[8, 5, 4, 2])).eval()  # full size, 75/s
        with torch.no_grad():
            full.encoder_model.quantizer.codebook.embed.normal_()  # codes spread over the codebook
        full.save_pretrained(model_dir)
    fast = FastWavTokenizer(AutoModel.from_pretrained(model_dir).eval())
    speech = torch.cat([u.waveform for u in load_test_set(args.speech)])
    result = {"model": "full-size 75 tokens/s, random weights" if args.full_size else str(args.model),
              "device": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
              "agreement": {"speech": agreement(fast, speech.repeat(math.ceil(args.agreement_seconds * RATE
                                                                                / speech.numel()))
                                                [: int(args.agreement_seconds * RATE)]),
                            "music": agreement(fast, music_like(args.agreement_seconds))}}
    print(json.dumps(result["agreement"]), flush=True)
    # the long file: speech and music-like audio alternating in 5-minute blocks
    long_file, codes_file, back = work / "long.wav", work / "long.codes.safetensors", work / "back.wav"
    sf.write(long_file, alternating(speech, args.minutes * 60).clamp(-1, 1).numpy(), RATE, subtype="PCM_16")
    cli = [sys.executable, "-m", "wavtokenizer_hf.cli"]
    seconds = args.minutes * 60
    result["cli"] = {"minutes": args.minutes}
    for name, command in (("encode", [*cli, "encode", str(long_file), str(codes_file)]),
                          ("decode", [*cli, "decode", str(codes_file), str(back)]),
                          ("decode --precision bf16",
                           [*cli, "decode", str(codes_file), str(work / "back_bf16.wav"), "--precision", "bf16"]),
                          ("reconstruct", [*cli, "reconstruct", str(long_file), str(work / "rec.wav")])):
        row = timed([*command, "--model", str(model_dir)])
        row["x_real_time"] = round(seconds / row["seconds"], 1)
        result["cli"][name] = row
        print(name, json.dumps(row), flush=True)
    if args.out:
        with atomic_path(args.out, overwrite=True) as tmp:
            tmp.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
