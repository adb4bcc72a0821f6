"""Command-line options shared by the LM scripts (training schedule, splits and sampling)."""

from __future__ import annotations

import argparse

from .sampling import SamplingConfig
from .trainer import LMTrainConfig


def add_train_args(parser: argparse.ArgumentParser, defaults: LMTrainConfig | None = None) -> None:
    d = defaults or LMTrainConfig()
    group = parser.add_argument_group("training")
    group.add_argument("--block-size", type=int, default=d.block_size, help="tokens per packed block")
    group.add_argument("--batch-size", type=int, default=d.batch_size, help="blocks per step")
    group.add_argument("--lr", type=float, default=d.learning_rate, help="peak learning rate (AdamW)")
    group.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    group.add_argument("--max-steps", type=int, default=d.max_steps, help="length of the cosine schedule")
    group.add_argument("--max-minutes", type=float, default=d.max_minutes, help="stop earlier after this much time")
    group.add_argument("--clock", default=d.clock, choices=["wall", "cpu"],
                       help="what --max-minutes counts: wall time, or this process's CPU time (fair between runs "
                            "that share the cores)")
    group.add_argument("--eval-every", type=int, default=d.eval_every, help="held-out evaluation interval (steps)")
    group.add_argument("--mixed-precision", default=d.mixed_precision, choices=["no", "bf16", "fp16"])
    group.add_argument("--seed", type=int, default=d.seed)
    group.add_argument("--log-with", default="", help="accelerate tracker: tensorboard, trackio, wandb (installed)")


def train_config_from(args: argparse.Namespace) -> LMTrainConfig:
    return LMTrainConfig(block_size=args.block_size, batch_size=args.batch_size, learning_rate=args.lr,
                         min_learning_rate=args.lr / 10, warmup_steps=args.warmup_steps, max_steps=args.max_steps,
                         max_minutes=args.max_minutes, clock=args.clock, eval_every=args.eval_every,
                         mixed_precision=args.mixed_precision, seed=args.seed, log_with=args.log_with)


def add_split_args(parser: argparse.ArgumentParser, validation_share: float, selection_share: float = 0.05) -> None:
    group = parser.add_argument_group("splits (by a hash of each utterance id)")
    group.add_argument("--validation-share", type=float, default=validation_share,
                       help="utterances held out for the reported numbers")
    group.add_argument("--selection-share", type=float, default=selection_share,
                       help="utterances held out for choosing the best checkpoint (0 = choose on the validation "
                            "utterances; metrics.json then says so)")


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    d = SamplingConfig()
    group = parser.add_argument_group("sampling")
    group.add_argument("--temperature", type=float, default=d.temperature, help="0 = greedy")
    group.add_argument("--top-k", type=int, default=d.top_k, help="0 = off")
    group.add_argument("--top-p", type=float, default=d.top_p, help="1 = off")
    group.add_argument("--sample-seed", type=int, default=d.seed)


def sampling_from(args: argparse.Namespace) -> SamplingConfig:
    return SamplingConfig(temperature=args.temperature, top_k=args.top_k or None,
                          top_p=args.top_p if args.top_p < 1 else None, seed=args.sample_seed)
