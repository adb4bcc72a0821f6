"""Low-precision decode: speed against the stock model's fp32 decode, and what it costs in quality.

  python benchmarks/bench_decode_precision.py --quality-model wavtokenizer_hf/default_codec \
      --data ../shared/data/real_speech --out benchmarks/results_decode_precision.json

Speed: a full-size 75 tokens/s model (random weights; speed does not depend on them) and the quality model, one clip
of `--seconds` at batch 1, the stock decode and each of ours called in turn within every repeat (a slow spell of a
shared machine hits all of them); a row's speed-up is the median of its per-repeat ratios to the stock time.
Rows: our fp32 decode (exact), `precision="bf16"` (bf16 autocast of the decoder's convolutions, linears and
attention), and int8 dynamic quantisation of every `nn.Linear` (`torch.ao.quantization.quantize_dynamic`, measured
to choose between the two; the package offers bf16 only).

Quality: every file of `--data` encoded with the quality model, decoded in fp32 and in each low precision. Reported
per precision: mean mel distance and STOI against the original audio (and their change from fp32), mel distance and
largest absolute sample difference against the fp32 decode.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
import transformers
from transformers import AutoModel, WavTokenizerConfig, WavTokenizerModel

from wavtokenizer_hf.evaluation import load_test_set
from wavtokenizer_hf.evaluation.quality import stoi
from wavtokenizer_hf.evaluation.spectral import mel_distance
from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.inference import FastWavTokenizer

RATE = 24000


def int8_copy(model: WavTokenizerModel) -> FastWavTokenizer:
    """A FastWavTokenizer over a copy of `model` whose linears are int8 dynamically quantised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        quantised = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    return FastWavTokenizer(quantised)


def decoders(model: WavTokenizerModel) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """name -> function from (1, F) codes to (F * hop,) audio."""
    fast, quantised = FastWavTokenizer(model), int8_copy(model)
    return {
        "fp32": lambda codes: fast.decode(codes)[0],
        "bf16": lambda codes: fast.decode(codes, precision="bf16")[0],
        "int8": lambda codes: quantised.decode(codes)[0],
    }


def speed(model: WavTokenizerModel, seconds: float, repeats: int) -> dict:
    frames = int(seconds * RATE) // model.config.hop_length
    codes = torch.randint(0, model.config.codebook_size, (1, frames))
    calls = {"stock fp32": lambda: model.decode(codes[:, None]).audio_values, **{
        f"ours {name}": (lambda fn=fn: fn(codes)) for name, fn in decoders(model).items()}}
    with torch.inference_mode():
        for fn in calls.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):
            for name, fn in calls.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    stock = times["stock fp32"]
    return {name: {"seconds": round(statistics.median(t), 4), "x_real_time": round(seconds / statistics.median(t), 1),
                   "speed_up_vs_stock": round(statistics.median(s / x for s, x in zip(stock, t)), 2)}
            for name, t in times.items()}


def quality(model: WavTokenizerModel, data: Path, limit: int | None) -> dict:
    fast = FastWavTokenizer(model)
    names = decoders(model)
    rows: dict[str, dict[str, list[float]]] = {name: {"mel": [], "stoi": [], "mel_vs_fp32": [], "max_abs_vs_fp32": []}
                                               for name in names}
    utterances = load_test_set(data, limit=limit)
    with torch.inference_mode():
        for utterance in utterances:
            original = utterance.waveform
            codes = fast.encode_list([original])[0][None]
            decoded = {name: fn(codes)[: original.numel()] for name, fn in names.items()}
            for name, audio in decoded.items():
                rows[name]["mel"].append(mel_distance(original, audio, RATE))
                rows[name]["stoi"].append(stoi(original, audio, RATE)[0])
                rows[name]["mel_vs_fp32"].append(mel_distance(decoded["fp32"], audio, RATE))
                rows[name]["max_abs_vs_fp32"].append(float((audio - decoded["fp32"]).abs().max()))
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    summary = {}
    for name, metric in rows.items():
        summary[name] = {"mel_distance": round(mean(metric["mel"]), 4), "stoi": round(mean(metric["stoi"]), 4),
                         "mel_distance_vs_fp32_decode": round(mean(metric["mel_vs_fp32"]), 4),
                         "max_abs_difference_vs_fp32": round(max(metric["max_abs_vs_fp32"]), 5)}
    for name in summary:
        summary[name]["mel_distance_change"] = round(summary[name]["mel_distance"] - summary["fp32"]["mel_distance"], 4)
        summary[name]["stoi_change"] = round(summary[name]["stoi"] - summary["fp32"]["stoi"], 4)
    seconds = sum(u.waveform.numel() for u in utterances) / RATE
    return {"files": len(utterances), "audio_seconds": round(seconds, 1), "by_precision": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality-model", type=Path, default=Path("wavtokenizer_hf/default_codec"))
    parser.add_argument("--data", type=Path, required=True, help="audio folder or corpus (test split) for quality")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    full = WavTokenizerModel(WavTokenizerConfig(upsampling_ratios=[8, 5, 4, 2])).eval()
    with torch.no_grad():
        full.encoder_model.quantizer.codebook.embed.normal_()
    trained = AutoModel.from_pretrained(args.quality_model).eval()
    result = {
        "command": "python benchmarks/bench_decode_precision.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "device": "cpu", "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "speed_full_size_75": speed(full, args.seconds, args.repeats),
    }
    print(json.dumps(result["speed_full_size_75"]), flush=True)
    result["speed_quality_model"] = speed(trained, args.seconds, args.repeats)
    print(json.dumps(result["speed_quality_model"]), flush=True)
    result["quality"] = {"model": str(args.quality_model), "data": str(args.data),
                         **quality(trained, args.data, args.limit)}
    print(json.dumps(result["quality"], indent=1))
    if args.out:
        with atomic_path(args.out, overwrite=True) as tmp:
            tmp.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
