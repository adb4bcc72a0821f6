"""Is a codec's missing pitch a phase problem or a magnitude problem? Scores, side by side on one held-out set:
the codec; the codec's own STFT magnitudes with phases rebuilt by Griffin-Lim (from the codec's phases, and from
random ones); and the *original's* magnitudes with Griffin-Lim phases. If Griffin-Lim on the original's magnitudes
keeps the harmonics (low phase advance error, voicing kept) but on the codec's does not, the codec's magnitudes
lack them and no phase fix can help.

  python benchmarks/phase_or_magnitude.py --codec wavtokenizer_hf/default_codec --data runs/corpus4h_natural \\
      --split validation --limit 20 --out benchmarks/results_phase_or_magnitude.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wavtokenizer_hf.atomic import atomic_path  # noqa: E402
from wavtokenizer_hf.evaluation import CodecReconstructor, evaluate, load_test_set  # noqa: E402
from wavtokenizer_hf.evaluation.runner import markdown_table  # noqa: E402

N_FFT, HOP = 1024, 256
KEYS = ("mel_distance", "stoi", "vuv_f1", "f0_gross_error", "phase_advance_error", "wer", "cer")


def griffin_lim(magnitude: torch.Tensor, phase: torch.Tensor, iterations: int, length: int) -> torch.Tensor:
    """Phases that fit `magnitude` (alternating projections), starting from `phase`."""
    window = torch.hann_window(N_FFT)
    spectrum = torch.polar(magnitude, phase)
    for _ in range(iterations):
        audio = torch.istft(spectrum, N_FFT, HOP, window=window, length=length)
        spectrum = torch.polar(magnitude, torch.stft(audio, N_FFT, HOP, window=window, return_complex=True).angle())
    return torch.istft(spectrum, N_FFT, HOP, window=window, length=length)


def stft(audio: torch.Tensor) -> torch.Tensor:
    return torch.stft(audio, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)


class Rephased:
    """Magnitudes of the codec's output (or of the original) with Griffin-Lim phases."""

    def __init__(self, codec: CodecReconstructor, name: str, iterations: int, source: str, start: str):
        self.codec, self.name, self.iterations, self.source, self.start = codec, name, iterations, source, start
        self.bits_per_second, self.codebook_size = codec.bits_per_second, codec.codebook_size

    def reconstruct(self, waveform: torch.Tensor):
        decoded, codes = self.codec.reconstruct(waveform)
        spectrum = stft(waveform[: decoded.numel()] if self.source == "original" else decoded)
        phase = (stft(decoded).angle() if self.start == "codec" else
                 2 * math.pi * torch.rand(spectrum.shape, generator=torch.Generator().manual_seed(0)))
        return griffin_lim(spectrum.abs(), phase, self.iterations, decoded.numel()), codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    codec = CodecReconstructor(args.codec)
    n = args.iterations
    reconstructors = [codec,
                      Rephased(codec, f"codec magnitudes, Griffin-Lim {n} from codec phases", n, "codec", "codec"),
                      Rephased(codec, f"codec magnitudes, Griffin-Lim {n} from random phases", n, "codec", "random"),
                      Rephased(codec, f"original magnitudes, Griffin-Lim {n} from random phases", n, "original",
                               "random")]
    results = evaluate(reconstructors, load_test_set(args.data, args.split, args.limit, speech_only=True),
                       with_asr=True, with_mos=False)
    print(markdown_table(results))
    if args.out:
        summary = {"command": " ".join(sys.argv), "original": {k: results["original"].get(k) for k in ("wer", "cer")},
                   "rows": {name: {k: entry["summary"].get(k) for k in KEYS}
                            for name, entry in results["codecs"].items()}}
        with atomic_path(args.out, overwrite=True) as tmp:
            tmp.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
