"""Every GPU benchmark in one run, inside a time budget; the JSON is rewritten after each measurement, so a run cut
short still leaves what it measured.

  python benchmarks/bench_gpu.py --out $OUT/bench                      # on a GPU machine, about 8 minutes
  python benchmarks/bench_gpu.py --out /tmp/bench --device cpu --tiny --clip-seconds 1 --batch-sizes 1 2 \
      --long-minutes 0.5 --map-clips 4 --budget-seconds 60               # the same code on a CPU, in seconds

Parts, in this order (a part that the budget does not reach is recorded as skipped):
0. exactness, always: batched codes equal to one-at-a-time codes, streaming codes equal to a whole-file encode of
   90 s, and the long decode's distance to the stock decode on 2 minutes of codes, on the device (TF32 off inside).
1. throughput: stock `WavTokenizerModel` against this package (`FastWavTokenizer`), same weights, for each clip
   length and batch size: codes identical?, encode and decode x real time (stock and ours called in turn within each
   repeat), our bf16 decode, peak GPU memory of each call. Summary: each side's best batch on encode.
2. long: `--long-minutes` of speech and music-like audio alternating in 5-minute blocks, encoded by the streaming
   encoder (`long_audio.StreamingEncoder`) and decoded exactly (`long_audio.decode_long`): time, peak memory, and code
   agreement with a whole-file encode of the first 10 minutes.
3. datasets_map: `datasets.map` of `--map-clips` 10 s clips with `DatasetTokenizer` (one process per GPU,
   `with_rank=True`) against a per-row loop over the stock model; codes identical?

Model: a full-size 75 tokens/s WavTokenizer with random weights (speed does not depend on them), `--tiny` for a
quick check, or `--model DIR`. Needs transformers >= 5.24 (WavTokenizerModel), soundfile, and `datasets` for part 3.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import transformers
from transformers import AutoModel, WavTokenizerConfig, WavTokenizerModel

from wavtokenizer_hf.inference import FastWavTokenizer
from wavtokenizer_hf.long_audio import StreamingEncoder, decode_long

from signals import RATE, alternating, music_like  # run as a script from benchmarks/, so its folder is on sys.path

TINY = dict(num_filters=4, hidden_size=16, codebook_dim=16, codebook_size=64, decoder_hidden_size=32,
            decoder_intermediate_size=64, decoder_num_layers=1)
SPEECH = Path(__file__).resolve().parents[1] / "assets" / "audio" / "arctic_a0007.wav"


class Budget:
    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


class Results:
    """The result dictionary, written atomically to OUT/bench_gpu.json after every change."""

    def __init__(self, out_dir: Path, meta: dict):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path, self.data = out_dir / "bench_gpu.json", {**meta, "parts": {}}
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)

    def add(self, part: str, key: str, value) -> None:
        self.data["parts"].setdefault(part, {})[key] = value
        self.save()
        print(part, key, json.dumps(value), flush=True)


def build_model(args: argparse.Namespace) -> WavTokenizerModel:
    if args.model:
        return AutoModel.from_pretrained(args.model).eval().to(args.device)
    torch.manual_seed(0)
    config = WavTokenizerConfig(upsampling_ratios=[8, 5, 4, 2], **(TINY if args.tiny else {}))
    model = WavTokenizerModel(config).eval()
    with torch.no_grad():
        model.encoder_model.quantizer.codebook.embed.normal_()  # codes spread over the codebook
    return model.to(args.device)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def peak_memory_mb(call: Callable, device: str) -> float | None:
    """Peak GPU memory allocated during `call` above what was allocated before it (None on a CPU)."""
    if not device.startswith("cuda"):
        call()
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    call()
    synchronize(device)
    return round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)


def timed_in_turn(calls: dict[str, Callable], repeats: int, device: str) -> dict[str, float]:
    """Median seconds of each call, the calls taking turns within every repeat (after one warm-up each)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()
    for _ in range(repeats):
        for name, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            call()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def attempt(call: Callable, failures: dict[str, str], name: str):
    """`call()`, or None with the error recorded under `name` when the device refuses the size (memory, index
    limits): one side failing a row is a result, not the end of the run."""
    try:
        return call()
    except RuntimeError as err:  # torch.OutOfMemoryError is one too
        failures[name] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
        return None


def throughput_row(model: WavTokenizerModel, fast: FastWavTokenizer, audio: torch.Tensor, repeats: int,
                   device: str) -> dict:
    """One clip length and batch size: codes identical?, each side's encode and decode speed and peak memory; a side
    that fails at this size is reported as failed, and the other side is still measured."""
    batch, seconds = audio.shape[0], audio.shape[1] / RATE
    failures: dict[str, str] = {}
    row: dict = {"clip_seconds": seconds, "batch": batch}
    with torch.inference_mode():
        stock_codes = attempt(lambda: model.encode(audio[:, None]).audio_codes[:, 0], failures, "encode_stock")
        encoded = attempt(lambda: fast.encode(audio), failures, "encode_ours")
        frames = encoded[1] if encoded is not None else None  # None: every row is whole
        codes = stock_codes if stock_codes is not None else (encoded[0] if encoded is not None else None)
        if stock_codes is not None and encoded is not None:
            row["codes_identical"] = float((stock_codes == encoded[0]).float().mean())
        calls: dict[str, Callable] = {}
        if stock_codes is not None:
            calls["encode_stock"] = lambda: model.encode(audio[:, None])
        if encoded is not None:
            calls["encode_ours"] = lambda: fast.encode(audio)
        if codes is not None:
            stock_audio = attempt(lambda: model.decode(codes[:, None]).audio_values.reshape(batch, -1), failures,
                                  "decode_stock")
            ours_audio = attempt(lambda: fast.decode(codes, frames).reshape(batch, -1), failures, "decode_ours")
            if stock_audio is not None and ours_audio is not None:
                row["decode_max_abs_diff"] = float((stock_audio - ours_audio).abs().max())
            stock_audio = ours_audio = None
            if "decode_stock" not in failures:
                calls["decode_stock"] = lambda: model.decode(codes[:, None])
            if "decode_ours" not in failures:
                calls["decode_ours"] = lambda: fast.decode(codes, frames)
                calls["decode_ours_bf16"] = lambda: fast.decode(codes, frames, precision="bf16")
        times = timed_in_turn(calls, repeats, device)
        memory = {f"{name}_peak_mb": peak_memory_mb(call, device) for name, call in calls.items()}
    total = seconds * batch
    row.update({f"{name}_x_real_time": round(total / t, 1) for name, t in times.items()}, **memory)
    if failures:
        row["failed"] = failures
    return row


def throughput(model: WavTokenizerModel, fast: FastWavTokenizer, args, budget: Budget, results: Results) -> None:
    device = args.device
    for seconds in args.clip_seconds:
        for batch in args.batch_sizes:
            key = f"{seconds:g}s_batch{batch}"
            if budget.left() <= 0:
                results.add("throughput", key, "skipped: time budget spent")
                continue
            generator = torch.Generator().manual_seed(batch)
            audio = (torch.randn(batch, int(seconds * RATE), generator=generator) * 0.1).to(device)
            results.add("throughput", key, throughput_row(model, fast, audio, args.repeats, device))
            audio = None
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    rows = [r for r in results.data["parts"]["throughput"].values()
            if isinstance(r, dict) and "encode_stock_x_real_time" in r and "encode_ours_x_real_time" in r]
    for seconds in args.clip_seconds:
        same = [r for r in rows if r["clip_seconds"] == seconds]
        if same:
            stock = max(same, key=lambda r: r["encode_stock_x_real_time"])
            ours = max(same, key=lambda r: r["encode_ours_x_real_time"])
            results.add("throughput", f"best_encode_{seconds:g}s", {
                "stock": {"batch": stock["batch"], "x_real_time": stock["encode_stock_x_real_time"]},
                "ours": {"batch": ours["batch"], "x_real_time": ours["encode_ours_x_real_time"]},
                "ratio": round(ours["encode_ours_x_real_time"] / stock["encode_stock_x_real_time"], 2),
                "codes_identical_in_every_row": all(r["codes_identical"] == 1.0 for r in same)})


def exactness(model: WavTokenizerModel, fast: FastWavTokenizer, args, results: Results) -> None:
    """Run first, whatever the budget: on this device, do the exact paths give the codes and audio they promise?
    Batched against one at a time, streaming against whole-file, the long decode against the stock decode."""
    import soundfile as sf

    from wavtokenizer_hf.audio_io import resample

    wave, rate = sf.read(SPEECH, dtype="float32")
    speech = resample(torch.from_numpy(wave)[None], rate, RATE)[0]
    clips = [alternating(speech, seconds)[: int(seconds * RATE)] for seconds in (3.1, 7.0, 11.3, 20.0)]
    with torch.inference_mode():
        batched = fast.encode_list([c.to(args.device) for c in clips])
        alone = [fast.encode(c[None].to(args.device))[0][0].cpu() for c in clips]
        long = alternating(speech, 90.0)
        streamed = StreamingEncoder(fast, chunk_seconds=10.0).encode(long)
        whole = fast.encode(long[None].to(args.device))[0][0].cpu()
        codes = whole[: 120 * round(fast.config.sampling_rate / fast.hop_length)]
        ours = decode_long(fast, codes.to(args.device), chunk_frames=500).cpu()
        stock = model.decode(codes[None, None].to(args.device)).audio_values[0, 0].float().cpu()
    results.add("exactness", "result", {
        "batched_equal_to_single": all(torch.equal(a.cpu(), b) for a, b in zip(batched, alone)),
        "streaming_equal_to_whole_90s": bool(torch.equal(streamed.cpu(), whole)),
        "long_decode_max_abs_diff_to_stock": float((ours[: stock.numel()] - stock).abs().max()),
        "tf32_flags_outside": [torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32]})


def long_audio(fast: FastWavTokenizer, args, budget: Budget, results: Results) -> None:
    if budget.left() <= 0:
        results.add("long", "status", "skipped: time budget spent")
        return
    import soundfile as sf

    from wavtokenizer_hf.audio_io import resample

    wave, rate = sf.read(SPEECH, dtype="float32")
    speech = resample(torch.from_numpy(wave)[None], rate, RATE)[0]
    audio = alternating(speech, args.long_minutes * 60)
    seconds = audio.numel() / RATE
    with torch.inference_mode():
        held: dict[str, torch.Tensor] = {}
        start = time.perf_counter()
        encode_mb = peak_memory_mb(lambda: held.update(codes=StreamingEncoder(fast).encode(audio)), args.device)
        encode_s = time.perf_counter() - start
        codes = held["codes"]
        start = time.perf_counter()
        decode_mb = peak_memory_mb(lambda: decode_long(fast, codes), args.device)
        decode_s = time.perf_counter() - start
        head = audio[: min(audio.numel(), 600 * RATE)]
        whole = fast.encode(head[None].to(args.device))[0][0].cpu()
    results.add("long", "result", {
        "audio_minutes": round(seconds / 60, 2), "frames": int(codes.numel()),
        "streaming_encode_seconds": round(encode_s, 2), "streaming_encode_x_real_time": round(seconds / encode_s, 1),
        "streaming_encode_peak_mb": encode_mb, "exact_decode_seconds": round(decode_s, 2),
        "exact_decode_x_real_time": round(seconds / decode_s, 1), "exact_decode_peak_mb": decode_mb,
        "streaming_equal_to_whole_file_first_10_min": float((codes[: whole.numel()].cpu() == whole).float().mean())})


def datasets_map(model: WavTokenizerModel, model_dir: Path, args, budget: Budget, results: Results) -> None:
    if budget.left() <= 0:
        results.add("datasets_map", "status", "skipped: time budget spent")
        return
    try:
        from datasets import Dataset
    except Exception as err:  # missing, or installed beside a pyarrow too old for it
        results.add("datasets_map", "status", f"skipped: datasets cannot be imported ({type(err).__name__}: {err})")
        return
    from wavtokenizer_hf.tokenization import DatasetTokenizer

    clips = [music_like(10.0, seed=i).numpy() for i in range(args.map_clips)]
    rows = Dataset.from_dict({"audio": clips, "sampling_rate": [RATE] * len(clips)})
    processes = max(1, torch.cuda.device_count()) if args.device.startswith("cuda") else 1
    start = time.perf_counter()
    ours = rows.map(DatasetTokenizer(model_dir, device=None if args.device.startswith("cuda") else args.device),
                    batched=True, batch_size=64, with_rank=True, num_proc=processes if processes > 1 else None,
                    remove_columns=["audio"],
                    load_from_cache_file=False)
    ours_s = time.perf_counter() - start

    def stock(row: dict) -> dict:
        with torch.inference_mode():
            wave = torch.tensor(row["audio"], dtype=torch.float32, device=args.device)
            return {"audio_codes": model.encode(wave[None, None]).audio_codes[0, 0].cpu().numpy()}

    start = time.perf_counter()
    reference = rows.map(stock, remove_columns=["audio"], load_from_cache_file=False)
    stock_s = time.perf_counter() - start
    same = all(np.array_equal(a, b) for a, b in zip(ours["audio_codes"], reference["audio_codes"]))
    audio_seconds = 10.0 * len(clips)
    results.add("datasets_map", "result", {
        "clips": len(clips), "audio_seconds": audio_seconds, "processes": processes,
        "ours_x_real_time": round(audio_seconds / ours_s, 1), "stock_per_row_x_real_time": round(audio_seconds / stock_s, 1),
        "speed_up": round(stock_s / ours_s, 2), "codes_identical": same})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for bench_gpu.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", type=Path, default=None, help="a model directory (default: full size, random)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model, for a check on a CPU")
    parser.add_argument("--clip-seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--map-clips", type=int, default=256)
    parser.add_argument("--budget-seconds", type=float, default=420.0,
                        help="no new measurement starts after this (the one running finishes)")
    parser.add_argument("--stock-fp32", action="store_true",
                        help="turn TF32 off for the stock model too (torch's default lets cuDNN use it; ours never)")
    args = parser.parse_args()
    if args.stock_fp32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    budget = Budget(args.budget_seconds)
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor()
    results = Results(args.out, {
        "command": shlex.join(["python", "benchmarks/bench_gpu.py", *sys.argv[1:]]),
        "device": device_name or args.device, "torch": torch.__version__, "transformers": transformers.__version__,
        "stock_tf32_cudnn_matmul": [torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32],
        "model": str(args.model) if args.model else ("tiny, random" if args.tiny else "full-size 75 tokens/s, random")})
    model = build_model(args)
    fast = FastWavTokenizer(model)
    exactness(model, fast, args, results)
    throughput(model, fast, args, budget, results)
    long_audio(fast, args, budget, results)
    with tempfile.TemporaryDirectory() as work:  # DatasetTokenizer loads from a directory in each process
        model_dir = args.model or Path(work) / "model"
        if not args.model:
            model.save_pretrained(model_dir)
        datasets_map(model, model_dir, args, budget, results)
    results.add("run", "seconds", round(args.budget_seconds - budget.left(), 1))


if __name__ == "__main__":
    main()
