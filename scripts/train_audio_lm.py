"""Train a GPT on audio-token streams (`<bos> codes <eos>` per utterance, packed without cross-utterance attention)
and compare its held-out perplexity with unigram and bigram baselines on the same utterances.

  python scripts/train_audio_lm.py --data runs/demo/tokenized --codec wavtokenizer --out runs/audio_lm
  python scripts/train_audio_lm.py ... --model-config my_gpt2.json      # any transformers causal-LM config
  accelerate launch scripts/train_audio_lm.py ...                       # GPUs / mixed precision via accelerate

Utterances are packed whole into blocks (one longer than a block is split, its <bos> repeated); the checkpoint is
chosen on a selection split, the numbers are measured on separate validation utterances. Writes OUT/model
(AutoModelForCausalLM + AutoTokenizer), OUT/metrics.json, OUT/train_log.jsonl and OUT/samples/*.wav (validation
prompts and their sampled continuations, decoded by the codec).
"""

import argparse
from pathlib import Path

from transformers.utils import logging as hf_logging

from lm.audio_lm import train_audio_lm
from lm.cli_args import add_sampling_args, add_split_args, add_train_args, sampling_from, train_config_from
from lm.trainer import LMTrainConfig
from wavtokenizer_hf.errors import run_script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="tokenized dataset (save_to_disk output or parquet parts)")
    parser.add_argument("--codec", required=True, help="the codec directory the data was tokenized with")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model-config", default=None, help="causal-LM config JSON (default: small Llama)")
    parser.add_argument("--init-from", default=None, help="continue training a saved audio LM")
    parser.add_argument("--audio-bpe", default=None,
                        help="an audio-BPE directory (lm.audio_bpe): train on its tokens instead of single codes")
    parser.add_argument("--samples", type=int, default=3, help="held-out prompts to continue")
    parser.add_argument("--prompt-seconds", type=float, default=2.0)
    parser.add_argument("--continuation-seconds", type=float, default=4.0)
    add_train_args(parser, LMTrainConfig(max_steps=1000))
    add_split_args(parser, validation_share=0.1)
    add_sampling_args(parser)
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    metrics = train_audio_lm(args.data, args.codec, args.out, train_config_from(args),
                             model_config=args.model_config, init_from=args.init_from,
                             validation_share=args.validation_share, selection_share=args.selection_share,
                             num_samples=args.samples, prompt_seconds=args.prompt_seconds,
                             continuation_seconds=args.continuation_seconds, sampling=sampling_from(args),
                             audio_bpe=args.audio_bpe)
    if not metrics.get("main_process", True):
        return 0  # under accelerate launch the main process reports
    for name in ("lm", "bigram", "unigram"):
        m = metrics[name]
        print(f"{name:8s} validation perplexity {m['perplexity']:8.1f}  loss {m['loss']:.3f} nats/token  "
              f"{m['bits_per_second']:.0f} bits/s")
    print(f"model: {args.out / 'model'}; samples: {len(metrics['samples'])} files in {args.out / 'samples'}")
    return 0


if __name__ == "__main__":
    run_script(main)
