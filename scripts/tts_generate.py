"""Speak a text with a trained TTS-LM and its codec.

  python scripts/tts_generate.py --lm runs/tts/model --codec wavtokenizer --text "it was a fine day" --out day.wav

An LM trained with an audio BPE (`finetune_tts.py --audio-bpe`) brings it in its model folder (`audio_bpe/`); its
tokens are decoded back to codes, and --max-seconds counts decoded frames.
"""

import argparse
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from lm.cli_args import add_sampling_args, sampling_from
from lm.tts_generation import generate_codes, load_tts
from wavtokenizer_hf.audio_io import write_audio
from wavtokenizer_hf.codec import Codec
from wavtokenizer_hf.errors import WavTokenizerError, run_script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm", required=True, help="the TTS-LM's model folder")
    parser.add_argument("--codec", required=True, help="the codec the LM was trained on")
    parser.add_argument("--text", required=True)
    parser.add_argument("--out", type=Path, required=True, help="audio file to write (.wav, .flac)")
    parser.add_argument("--format", default=None, choices=["interleaved", "plain"], help="default: as trained")
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--overwrite", action="store_true")
    add_sampling_args(parser)
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    if args.out.exists() and not args.overwrite:
        raise WavTokenizerError(f"{args.out} already exists; pass --overwrite to replace it")
    codec = Codec.from_pretrained(args.codec)
    model, formatter = load_tts(args.lm, codec, args.format)
    codes = generate_codes(model, formatter, args.text, codec.frame_rate, sampling_from(args), args.max_seconds)
    audio = codec.decode(torch.from_numpy(codes).long()[None])
    write_audio(args.out, audio, codec.sampling_rate, overwrite=args.overwrite)
    print(f"{len(codes)} frames ({len(codes) / codec.frame_rate:.2f} s) -> {args.out}")
    return 0


if __name__ == "__main__":
    run_script(main)
