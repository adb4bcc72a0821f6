"""Where codecs differ from the originals that no reference metric names: each band's level (dB against the original,
long-term average) and, in frames where the original is voiced (the evaluation's YIN track), how periodic the output
is (the highest normalised autocorrelation over 60-450 Hz lags, 40 ms frames), per speaker and overall.

  python benchmarks/spectral_balance.py --codec /tmp/stage5/previous_codec --codec wavtokenizer_hf/default_codec \
      --data runs/voices_test_ref --offset 288 --limit 120 --every 5 --out benchmarks/results_spectral_balance.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.evaluation import load_test_set
from wavtokenizer_hf.evaluation.pitch import HOP_SECONDS, track_pitch

RATE = 24000
EDGES = (0, 250, 500, 1000, 2000, 4000, 6000, 8000, 10000, 12000)
FRAME, LAG_MIN, LAG_MAX = 960, RATE // 450, RATE // 60


def band_levels(signal: np.ndarray) -> np.ndarray:
    """Mean power in each band of EDGES, dB (1024-point STFT, hop 256)."""
    spectrum = torch.stft(torch.as_tensor(signal, dtype=torch.float32), 1024, 256, window=torch.hann_window(1024),
                          return_complex=True).abs().pow(2).numpy()
    freqs = np.fft.rfftfreq(1024, 1 / RATE)
    return np.array([10 * np.log10(spectrum[(freqs >= lo) & (freqs < hi)].mean() + 1e-12)
                     for lo, hi in zip(EDGES[:-1], EDGES[1:])])


def periodicity(signal: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """At each sample index in `centres`: the highest normalised autocorrelation of a 40 ms frame over pitch lags."""
    values = []
    for centre in centres:
        start = int(centre) - FRAME // 2
        if start < 0 or start + FRAME + LAG_MAX > len(signal):
            continue
        head = signal[start:start + FRAME]
        lagged = np.lib.stride_tricks.sliding_window_view(signal[start + LAG_MIN:start + FRAME + LAG_MAX], FRAME)
        energy = np.sqrt((head ** 2).sum() * (lagged ** 2).sum(1)) + 1e-12
        values.append(float(((lagged @ head) / energy).max()))
    return np.array(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, required=True, help="a saved corpus")
    parser.add_argument("--split", default="test")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--every", type=int, default=1, help="score every n-th utterance")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    utterances = list(load_test_set(args.data, args.split, limit=args.limit, offset=args.offset, speech_only=True,
                                    quiet=True))[:: args.every]
    models = {c.name: AutoModel.from_pretrained(c).eval() for c in args.codec}
    rows = []
    for utterance in utterances:
        audio = utterance.waveform.float()
        _, voiced = track_pitch(audio, RATE)
        centres = np.flatnonzero(voiced) * round(HOP_SECONDS * RATE)
        signals = {"original": audio.numpy()}
        for name, model in models.items():
            with torch.no_grad():
                codes = model.encode(audio[None, None]).audio_codes
                signals[name] = model.decode(codes).audio_values.reshape(-1)[: audio.numel()].numpy()
        reference = band_levels(signals["original"])
        rows.append({"speaker": utterance.speaker, **{
            name: {"band_db": (band_levels(s) - reference).round(2).tolist(),
                   "periodicity": float(np.mean(periodicity(s, centres))) if len(centres) else None}
            for name, s in signals.items()}})
    summary = {}
    for group in ["all", *sorted({r["speaker"] for r in rows})]:
        chosen = [r for r in rows if group in ("all", r["speaker"])]
        summary[group] = {name: {"band_db": np.mean([r[name]["band_db"] for r in chosen], 0).round(1).tolist(),
                                 "periodicity": round(float(np.mean([r[name]["periodicity"] for r in chosen
                                                                     if r[name]["periodicity"] is not None])), 3)}
                          for name in ["original", *models]}
    with atomic_path(args.out, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"bands_hz": list(EDGES), "utterances": len(rows), "summary": summary,
                                   "per_utterance": rows}, indent=1))
    print("bands (Hz):", " ".join(f"{lo}-{hi}" for lo, hi in zip(EDGES[:-1], EDGES[1:])))
    for group, by_codec in summary.items():
        for name, values in by_codec.items():
            print(f"{group:12s} {name:16s} periodicity {values['periodicity']:.3f}  dB vs original {values['band_db']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
