"""Train a TTS language model (text tokens in, audio tokens out) on a tokenized corpus with word timings.

  python scripts/finetune_tts.py --data runs/demo/tokenized --codec wavtokenizer --out runs/tts \
      --format interleaved --eval-corpus runs/demo/corpus
  python scripts/finetune_tts.py ... --text-lm path/to/any-causal-lm     # extend and fine-tune an existing text LM
  python scripts/finetune_tts.py ... --text-lm runs/smollm2 --lora-rank 8  # LoRA (peft) + the new tokens' rows
  python scripts/finetune_tts.py ... --audio-bpe runs/demo/audio_bpe_16384  # audio-BPE tokens instead of single codes
  python scripts/finetune_tts.py ... --text-model sp-unigram              # SentencePiece text side (from scratch)

Formats: `interleaved` (OuteTTS-style: each word followed by its duration and codes; no aligner at inference) or
`plain` (text then all codes). The loss covers the audio part only. With `--audio-bpe` (lm.audio_bpe) the audio
tokens are that BPE's pieces, each word's frames encoded on their own (no token spans two words); the BPE is saved in
OUT/model/audio_bpe and tts_generate.py restores it. Held-out losses are also given in bits per second of audio,
which compares runs on single codes with runs on BPE tokens. Examples are packed whole into blocks (one
longer than a block is split, its text prompt repeated); the checkpoint is chosen on a selection split, the losses
are measured on separate validation utterances. Writes OUT/model (AutoModelForCausalLM +
AutoTokenizer + tts_format.json), OUT/metrics.json (held-out WER of generated speech beside the codec ceiling and the
originals, durations) and OUT/samples/*.flac.
"""

import argparse
from pathlib import Path

from transformers.utils import logging as hf_logging

from lm.cli_args import add_sampling_args, add_split_args, add_train_args, sampling_from, train_config_from
from lm.text_sentencepiece import TEXT_MODELS
from lm.trainer import LMTrainConfig
from lm.tts_training import finetune_tts
from wavtokenizer_hf.errors import run_script


def _percent(value, interval=None) -> str:
    if value is None:
        return "n/a (no recogniser installed)"
    return f"{value:.1%}" + (f" [{interval[0]:.1%}, {interval[1]:.1%}]" if interval else "")


def _interval(interval) -> str:
    return "n/a" if not interval else f"[{interval[0]:+.1%}, {interval[1]:+.1%}]"


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="tokenized corpus with words/audio_codes columns")
    parser.add_argument("--codec", required=True, help="the codec directory the data was tokenized with")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--format", default="interleaved", choices=["interleaved", "plain"])
    parser.add_argument("--text-lm", default=None, help="existing causal LM (+ fast tokenizer) to extend")
    parser.add_argument("--lora-rank", type=int, default=0,
                        help="with --text-lm: LoRA of this rank on its projections, only the new tokens' embedding "
                             "rows trained beside it (the model is saved merged); 0: fine-tune every weight")
    parser.add_argument("--model-config", default=None, help="causal-LM config JSON for a model from scratch")
    parser.add_argument("--audio-bpe", default=None,
                        help="an audio-BPE directory (lm.audio_bpe): train on its tokens instead of single codes")
    parser.add_argument("--text-model", default="bpe", choices=TEXT_MODELS,
                        help="text side of a model from scratch: byte-level BPE or SentencePiece (unigram, bpe)")
    parser.add_argument("--eval-corpus", default=None, help="corpus whose test split is spoken and scored")
    parser.add_argument("--eval-items", type=int, default=60,
                        help="held-out sentences to generate (from each test speaker in turn)")
    parser.add_argument("--samples", type=int, default=5, help="listening samples to write")
    add_train_args(parser, LMTrainConfig(block_size=1024, batch_size=8, max_steps=1500, eval_every=250))
    add_split_args(parser, validation_share=0.05)
    add_sampling_args(parser)
    args = parser.parse_args()
    if args.lora_rank < 0:
        parser.error(f"--lora-rank must be 0 (full fine-tuning) or positive, not {args.lora_rank}")
    hf_logging.disable_progress_bar()
    metrics = finetune_tts(args.data, args.codec, args.out, args.format, train_config_from(args),
                           text_lm=args.text_lm, model_config=args.model_config, eval_corpus=args.eval_corpus,
                           eval_items=args.eval_items, sampling=sampling_from(args),
                           validation_share=args.validation_share, selection_share=args.selection_share,
                           samples=args.samples, audio_bpe=args.audio_bpe, text_model=args.text_model,
                           lora_rank=args.lora_rank)
    if not metrics.get("main_process", True):
        return 0  # under accelerate launch the main process reports
    print(f"{metrics['steps']} steps in {metrics['train_seconds']:.0f} s; validation audio loss "
          f"{metrics['validation_audio_loss']:.3f} nats/token, {metrics['validation_bits_per_second']:.0f} bits/s "
          f"({metrics['validation_tokens_per_second']:.1f} scored tokens/s, {metrics['audio_vocab_size']} audio tokens)")
    conditioning = metrics["text_conditioning"]
    if conditioning.get("pairs"):
        low, high = conditioning["text_gain_interval"]
        print(f"text gain over the audio tokens: {conditioning['text_gain_bits_per_second']:.2f} bits/s "
              f"[{low:.2f}, {high:.2f}] ({conditioning['text_gain_nats']:.4f} nats per audio token); durations "
              f"{conditioning.get('duration_gain_bits_per_second', 0.0):.2f} bits/s, markers "
              f"{conditioning['marker_gain_bits_per_second']:.2f} bits/s; {conditioning['pairs']} utterance pairs")
    if "test" in metrics:
        t = metrics["test"]
        print(f"WER ({t['recognizer']}) on {t['sentences']} held-out sentences: generated "
              f"{_percent(t['wer_generated'], t.get('wer_generated_interval'))}, codec ceiling "
              f"{_percent(t['wer_reconstruction'], t.get('wer_reconstruction_interval'))}, originals "
              f"{_percent(t['wer_original'])}; generated - ceiling {_interval(t.get('wer_gap_interval'))}; CER "
              f"generated {_percent(t['cer_generated'])}, originals {_percent(t['cer_original'])}; duration ratio "
              f"{t['duration_ratio']:.2f}; speaker similarity to the originals: generated "
              f"{_number(t['speaker_similarity_generated'])}, codec {_number(t['speaker_similarity_reconstruction'])}")
    return 0


if __name__ == "__main__":
    run_script(main)
