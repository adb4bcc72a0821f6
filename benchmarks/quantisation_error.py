"""How far a codec's codes lie from its encoder's latents, on its training voices and on unseen ones: per frame, the
squared distance from the encoder's output to its code, as a share of the latents' variance (0: the codes keep the
latents exactly; 1: no better than the latents' mean). A codebook fitted too closely to its training frames shows as
a gap between the two.

  python benchmarks/quantisation_error.py --codec wavtokenizer_hf/default_codec --train-data runs/voices_free \
      --test-data runs/voices_test_ref --out benchmarks/results_quantisation_error.json

Utterances are read in the speaker-by-speaker order of `scripts/evaluate_codec.py` (`--test-offset`/`--test-limit`),
each cut to its first `--max-seconds`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModel

from wavtokenizer_hf.atomic import atomic_path

from voice_sets import RATE, add_voice_set_arguments, latents_before_and_after_quantiser, load_voice_sets  # noqa: E402


def latents_and_codes(model, utterances, max_seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the encoder's latent (N, D), its quantised latent (N, D) and the speaker (N,)."""
    latents, quantised, speakers = [], [], []
    for utterance in utterances:
        latent, code = latents_before_and_after_quantiser(model, utterance.waveform[: int(max_seconds * RATE)])
        latents.append(latent.numpy())
        quantised.append(code.numpy())
        speakers += [utterance.speaker or utterance.id] * latent.shape[0]
    return np.concatenate(latents), np.concatenate(quantised), np.array(speakers)


def relative_error(latents: np.ndarray, quantised: np.ndarray, speakers: np.ndarray) -> dict[str, float]:
    """Mean squared latent-to-code distance over the latents' total variance, for all frames and per speaker."""
    variance = float(((latents - latents.mean(axis=0)) ** 2).sum(axis=1).mean())
    squared = ((latents - quantised) ** 2).sum(axis=1)
    out = {"all": float(squared.mean()) / variance}
    for name in sorted(set(speakers.tolist())):
        out[name] = float(squared[speakers == name].mean()) / variance
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", type=Path, action="append", required=True)
    add_voice_set_arguments(parser, test_offset=0, test_limit=48)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    train, test = load_voice_sets(args)
    result = {"command": shlex.join(["python", *sys.argv]), "device": "cpu",
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "transformers": transformers.__version__, "codecs": {}}
    for codec in args.codec:
        model = AutoModel.from_pretrained(codec).eval()
        seen = relative_error(*latents_and_codes(model, train, args.max_seconds))
        unseen = relative_error(*latents_and_codes(model, test, args.max_seconds))
        result["codecs"][str(codec)] = {"codebook_size": model.config.codebook_size,
                                        "training_voices": seen, "unseen_voices": unseen}
        print(f"{codec}: training voices {seen['all']:.3f}, unseen voices {unseen['all']:.3f} ("
              + ", ".join(f"{k} {v:.3f}" for k, v in unseen.items() if k != "all") + ")", flush=True)
    if args.out:
        with atomic_path(args.out, overwrite=True) as tmp:
            tmp.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
