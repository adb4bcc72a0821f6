"""Narrow-band spectrograms (0-2 kHz, 85 ms windows) of one utterance per speaker and its copy synthesis by each
codec, side by side: where a codec keeps a voice's harmonics, follows its pitch, or renders it as noise.

  python benchmarks/plot_harmonics.py --codec wavtokenizer_hf/default_codec --data runs/voices_test_ref \
      --speaker joe --speaker slt --offset 528 --out benchmarks/harmonics_default.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import torch
from transformers import AutoModel

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.evaluation import load_test_set
from wavtokenizer_hf.errors import WavTokenizerError

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RATE = 24000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, required=True, help="a saved corpus")
    parser.add_argument("--split", default="test")
    parser.add_argument("--speaker", action="append", required=True)
    parser.add_argument("--offset", type=int, default=0, help="skip this many rows of the speaker-by-speaker order")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    utterances = load_test_set(args.data, args.split, offset=args.offset, speech_only=True, quiet=True)
    chosen = []
    for speaker in args.speaker:
        match = next((u for u in utterances if u.speaker == speaker), None)
        if match is None:
            raise WavTokenizerError(f"no utterance of speaker '{speaker}' in {args.data} ({args.split}, offset {args.offset})")
        chosen.append(match)
    models = [AutoModel.from_pretrained(c).eval() for c in args.codec]
    fig, axes = plt.subplots(len(chosen), 1 + len(models), figsize=(4.5 * (1 + len(models)), 3 * len(chosen)),
                             squeeze=False)
    for row, utterance in enumerate(chosen):
        audio = utterance.waveform[: int(args.seconds * RATE)].float()
        signals = [("original", audio.numpy())]
        for codec, model in zip(args.codec, models):
            with torch.no_grad():
                codes = model.encode(audio[None, None]).audio_codes
                signals.append((codec.name, model.decode(codes).audio_values.reshape(-1).numpy()))
        for column, (title, signal) in enumerate(signals):
            ax = axes[row, column]
            ax.specgram(np.asarray(signal, dtype=np.float64), NFFT=2048, Fs=RATE, noverlap=2048 - 240,
                        cmap="magma", vmin=-130)
            ax.set_ylim(0, 2000)
            ax.set_title(f"{utterance.speaker}: {title}", fontsize=9)
            ax.set_xlabel("s") if row == len(chosen) - 1 else None
            ax.set_ylabel("Hz") if column == 0 else None
    fig.tight_layout()
    with atomic_path(args.out, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=50, format="png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
