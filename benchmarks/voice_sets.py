"""Training voices and unseen voices for the latent probes (`pitch_probe.py`, `quantisation_error.py`), and a
codec's latents before and after its quantiser (run as scripts from benchmarks/)."""

from __future__ import annotations

import argparse

import torch

from wavtokenizer_hf.evaluation import load_test_set

RATE = 24000


def add_voice_set_arguments(parser: argparse.ArgumentParser, test_offset: int, test_limit: int) -> None:
    parser.add_argument("--train-data", required=True, help="a saved corpus of the codec's training voices")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--train-limit", type=int, default=250)
    parser.add_argument("--test-data", required=True, help="a saved corpus of unseen voices")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--test-offset", type=int, default=test_offset,
                        help="skip this many utterances of the speaker-by-speaker order")
    parser.add_argument("--test-limit", type=int, default=test_limit)
    parser.add_argument("--max-seconds", type=float, default=8.0, help="each utterance's first seconds")


def load_voice_sets(args: argparse.Namespace) -> tuple[list, list]:
    """(training-voice utterances, unseen-voice utterances), speech only."""
    train = load_test_set(args.train_data, args.train_split, limit=args.train_limit, speech_only=True, quiet=True)
    test = load_test_set(args.test_data, args.test_split, limit=args.test_limit, offset=args.test_offset,
                         speech_only=True, quiet=True)
    return train, test


@torch.no_grad()
def latents_before_and_after_quantiser(model, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A stock `WavTokenizerModel`'s encoder output and its quantised latents for mono `audio`, each (frames, dim)."""
    encoder = model.encoder_model
    latents = encoder.encoder(audio.float()[None, None])
    quantised = encoder.quantizer.decode(encoder.quantizer.encode(latents))
    return latents[0].T, quantised[0].T
