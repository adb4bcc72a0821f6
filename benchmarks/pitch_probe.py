"""How much of the pitch a codec's codes keep: a small read-out (one hidden layer) is fitted to classify each frame's
F0 (one-semitone bins over 60-450 Hz, or no pitch: the pitch teacher's classes) from the encoder's latents before
the quantiser and from the quantised latents (what the codes carry), on utterances of training voices, then scored
on unseen voices. Targets come from the evaluation's YIN tracker on the original audio.

  python benchmarks/pitch_probe.py --codec wavtokenizer_hf/default_codec --train-data runs/voices_free \
      --test-data runs/voices_test_ref --out benchmarks/results_pitch_probe.json

Per codec, latent and speaker: `f0_within_semitone` (frames voiced in the original whose predicted class is within
one bin of the true one) and `voicing_accuracy` (pitch or no pitch, every frame). The default test rows, 528-667 of
the test split's speaker-by-speaker order (35 per speaker), lie past those the codec confirmations have used.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModel

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.evaluation.pitch import HOP_SECONDS, track_pitch
from wavtokenizer_hf.training.pitch_teacher import CLASSES, pitch_classes

from voice_sets import RATE, add_voice_set_arguments, latents_before_and_after_quantiser, load_voice_sets  # noqa: E402
LATENTS = ("before_quantiser", "quantised")


def frames_of(model, utterances, max_seconds: float) -> dict:
    """Per frame: both latents, the original's pitch class and the speaker."""
    hop = model.config.hop_length
    out = {name: [] for name in LATENTS} | {"label": [], "speaker": []}
    for utterance in utterances:
        audio = utterance.waveform[: int(max_seconds * RATE)].float()
        latents, quantised = latents_before_and_after_quantiser(model, audio)
        frames = latents.shape[0]
        f0, _ = track_pitch(audio, RATE)
        index = np.minimum(np.round((np.arange(frames) + 0.5) * hop / RATE / HOP_SECONDS).astype(int), len(f0) - 1)
        out["before_quantiser"].append(latents.numpy())
        out["quantised"].append(quantised.numpy())
        out["label"].append(pitch_classes(f0[index]))
        out["speaker"] += [utterance.speaker or utterance.id] * frames
    return {k: (np.concatenate(v) if k != "speaker" else np.array(v)) for k, v in out.items()}


def fit_readout(x: np.ndarray, y: np.ndarray, seed: int, steps: int = 600):
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    inputs, targets = torch.tensor((x - mean) / std), torch.tensor(y)
    readout = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, CLASSES))
    optimiser = torch.optim.Adam(readout.parameters(), 1e-2)
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(readout(inputs), targets).backward()
        optimiser.step()
    return lambda z: readout(torch.tensor((z - mean) / std)).argmax(1).numpy()


def scores(predicted: np.ndarray, label: np.ndarray, speaker: np.ndarray) -> dict:
    result = {}
    for name in [*sorted(set(speaker.tolist())), "all"]:
        rows = speaker == name if name != "all" else np.ones(len(label), bool)
        voiced = rows & (label > 0)
        result[name] = {
            "frames": int(rows.sum()), "voiced_share": float(voiced.sum() / max(rows.sum(), 1)),
            "f0_within_semitone": float(np.mean(np.abs(predicted[voiced] - label[voiced]) <= 1)) if voiced.any()
            else float("nan"),
            "voicing_accuracy": float(np.mean((predicted[rows] > 0) == (label[rows] > 0))),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", type=Path, action="append", required=True)
    add_voice_set_arguments(parser, test_offset=528, test_limit=140)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    train, test = load_voice_sets(args)
    result = {
        "command": "python benchmarks/pitch_probe.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, vs in vars(args).items() if vs is not None
            for v in (vs if isinstance(vs, list) else [vs])),
        "device": "cpu", "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": transformers.__version__, "codecs": {},
    }
    for codec in args.codec:
        model = AutoModel.from_pretrained(codec).eval()
        seen, unseen = frames_of(model, train, args.max_seconds), frames_of(model, test, args.max_seconds)
        result["codecs"][str(codec)] = {}
        for latent in LATENTS:
            predict = fit_readout(seen[latent], seen["label"], args.seed)
            result["codecs"][str(codec)][latent] = {
                "training_voices": scores(predict(seen[latent]), seen["label"], np.array(["all"] * len(seen["label"]))),
                "unseen_voices": scores(predict(unseen[latent]), unseen["label"], unseen["speaker"]),
            }
            row = result["codecs"][str(codec)][latent]["unseen_voices"]
            print(f"{codec} {latent}: F0 within a semitone " + ", ".join(
                f"{name} {s['f0_within_semitone']:.2f}" for name, s in row.items())
                  + f"; voicing accuracy {row['all']['voicing_accuracy']:.2f}", flush=True)
    if args.out:
        with atomic_path(args.out, overwrite=True) as tmp:
            tmp.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
