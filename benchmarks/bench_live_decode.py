"""The live decoder (`Codec.stream_decoder`) on this machine, against the exact whole-sequence decode: for each
look-ahead (and context), the distance of the streamed audio to the exact decode (SNR of exact against streamed, and
the mel distance of `evaluation.spectral`; and, for scale, the mel distance of each to the source audio), the
real-time factor, the compute of a push and the latency of a frame (the frames it waits for, plus the median compute
of a push that decodes a window).

Codes arrive one frame per push (a live source at the codec's frame rate); the codes are those of real speech (the
`tts_samples` recordings when `--speech-dir` has them, else the repository's CMU ARCTIC clip), looped to `--seconds`.

  cd benchmarks && python bench_live_decode.py --seconds 60 --out results_live_decode.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.codec import Codec
from wavtokenizer_hf.default_codec import default_codec_dir
from wavtokenizer_hf.errors import run_script
from wavtokenizer_hf.evaluation.spectral import mel_distance

ROOT = Path(__file__).resolve().parents[1]
ARCTIC = ROOT / "assets" / "audio" / "arctic_a0007.wav"
TTS_SAMPLES = ROOT.parent / "shared" / "data" / "tts_samples" / "wav"


def speech(rate: int, seconds: float, folder: Path) -> tuple[torch.Tensor, str]:
    """`seconds` of speech at `rate`: the folder's recordings in name order (looped if short), else ARCTIC a0007."""
    import soundfile as sf

    from wavtokenizer_hf.audio_io import resample

    files = sorted(folder.glob("*.flac")) + sorted(folder.glob("*.wav")) if folder.is_dir() else []
    source = str(folder) if files else str(ARCTIC.relative_to(ROOT))
    pieces, filled = [], 0
    for path in (files or [ARCTIC]) * 1000:
        wave, sr = sf.read(path, dtype="float32", always_2d=True)
        pieces.append(resample(torch.from_numpy(wave.mean(axis=1))[None], sr, rate)[0])
        filled += pieces[-1].numel()
        if filled >= seconds * rate:
            break
    return torch.cat(pieces)[: int(seconds * rate)], source


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).sum() / (estimate - reference).pow(2).sum()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--lookaheads", type=int, nargs="+", default=[2, 5, 10, 25, 75])
    parser.add_argument("--context", type=int, default=50, help="context frames of the look-ahead rows")
    parser.add_argument("--contexts", type=int, nargs="*", default=[150],
                        help="further rows: these contexts at --lookahead-of-contexts")
    parser.add_argument("--lookahead-of-contexts", type=int, default=10)
    parser.add_argument("--step", type=int, default=5, help="frames per decoded piece")
    parser.add_argument("--speech-dir", type=Path, default=TTS_SAMPLES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    codec = Codec.from_pretrained(default_codec_dir())
    rate, frame_rate = codec.sampling_rate, codec.frame_rate
    audio, source = speech(rate, args.seconds, args.speech_dir)
    codes = codec.encode(audio, rate).audio_codes[0]
    began = time.perf_counter()
    exact = codec.decode(codes)[0]  # the offline decode (exact: over 60 s, the long decode; within 2e-6 of stock)
    exact_seconds = time.perf_counter() - began
    exact_to_source = mel_distance(audio[: exact.numel()], exact, rate)  # the codec's own loss, for scale
    print(f"{codes.numel()} frames of {source}; exact decode {exact_seconds:.1f} s, mel distance to the source "
          f"{exact_to_source:.4f}", flush=True)
    settings = [(lookahead, args.context) for lookahead in args.lookaheads]
    settings += [(args.lookahead_of_contexts, context) for context in args.contexts]
    rows = []
    for lookahead, context in settings:
        live = codec.stream_decoder(lookahead_frames=lookahead, context_frames=context, step_frames=args.step)
        parts, times = [], []
        for frame in range(codes.numel()):
            began = time.perf_counter()
            parts.append(live.push(codes[frame: frame + 1]))
            times.append(time.perf_counter() - began)
        began = time.perf_counter()
        parts.append(live.flush())
        times.append(time.perf_counter() - began)
        streamed = torch.cat(parts)
        assert streamed.shape == exact.shape
        compute = sum(times)
        emitting = [t for t, part in zip(times, parts) if part.numel()]  # the pushes that decoded a window
        rows.append({
            "lookahead_frames": lookahead, "context_frames": context, "step_frames": args.step,
            "window_frames": context + args.step + lookahead,
            "snr_db": round(snr_db(exact, streamed), 2), "mel_distance": round(mel_distance(exact, streamed, rate), 4),
            "mel_distance_to_source": round(mel_distance(audio[: exact.numel()], streamed, rate), 4),
            "x_real_time": round(audio.numel() / rate / compute, 2),
            "mean_window_push_ms": round(1000 * sum(emitting) / len(emitting), 1),
            "median_window_push_ms": round(1000 * statistics.median(emitting), 1),
            "fastest_window_push_ms": round(1000 * min(emitting), 1),  # the least disturbed by other processes
            "worst_push_ms": round(1000 * max(times), 1),
            "lookahead_ms": round(1000 * live.latency_frames / frame_rate, 1),
            "latency_ms": round(1000 * live.latency_frames / frame_rate + 1000 * statistics.median(emitting), 1)})
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "command": "cd benchmarks && python bench_live_decode.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()),
        "device": f"{cpu_name()}, {torch.get_num_threads()} torch threads", "cores": os.cpu_count(),
        "torch": torch.__version__, "codec": "wavtokenizer_hf/default_codec", "frame_rate": frame_rate,
        "speech": source, "seconds": args.seconds, "frames": codes.numel(),
        "exact_decode_seconds": round(exact_seconds, 2), "exact_mel_distance_to_source": round(exact_to_source, 4),
        "load_average_at_end": os.getloadavg(), "distance_of_the_exact_decode_to_itself": "SNR inf, mel distance 0",
        "rows": rows}
    with atomic_path(args.out, overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    run_script(main)
