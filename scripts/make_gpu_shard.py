"""A small corpus shard for a lent GPU machine, which builds no corpus of its own (no voices there, 10 minutes per
command) and receives at most 64 MiB with the working tree: speech of the training speakers (a seeded subset of
`--hours`, every speaker's turn before anyone's second) and a few utterances of each test speaker (unseen in training), as a saved `datasets` corpus with
`train` and `test` splits.

  python scripts/make_gpu_shard.py --corpus runs/voices --out .gpu_shard --hours 0.15 --test-limit 40
  (then `carry: [".whl", ".gpu_shard"]` in the device run; scripts/gpu_train.sh reads it)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.errors import WavTokenizerError, run_script
import numpy as np

from wavtokenizer_hf.evaluation.test_set import speaker_and_source, speaker_turns
from wavtokenizer_hf.saved_dataset import is_saved_dataset, load_split


def make_shard(corpus: Path, out: Path, hours: float, test_limit: int, seed: int) -> str:
    from datasets import DatasetDict

    if not is_saved_dataset(corpus):
        raise WavTokenizerError(f"{corpus}: not a saved corpus (build one with scripts/build_corpus.py)")
    train, columns = _speech(load_split(corpus, "train"))
    order = speaker_turns(list(np.random.default_rng(seed).permutation(len(columns))),
                          [speaker_and_source(r) for r in columns])
    durations, chosen, seconds = columns["duration"], [], 0.0
    for index in order:  # every speaker's turn comes before anyone's second
        if seconds >= hours * 3600:
            break
        chosen.append(index)
        seconds += durations[index]
    train = train.select(sorted(chosen))
    summary = f"{len(chosen)} rows, {seconds / 3600:.2f} h, {len(set(columns.select(chosen)['speaker']))} speakers"
    test, columns = _speech(load_split(corpus, "test"))
    test = test.select(sorted(speaker_turns(list(range(len(test))), [speaker_and_source(r) for r in columns])[:test_limit]))
    with atomic_path(out, is_dir=True) as tmp:
        DatasetDict({"train": train.flatten_indices(), "test": test.flatten_indices()}).save_to_disk(str(tmp))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    return f"{out}: train {summary}; test {len(test)} utterances of {len(set(columns['speaker']))} unseen speakers; " \
           f"{size:.1f} MiB"


def _speech(split):
    """The speech rows of a split, and the same rows without their audio (cheap to read column by column)."""
    speech = split.filter(lambda kind: kind == "speech", input_columns="kind")
    return speech, speech.remove_columns(["audio"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="a many-speaker corpus (scripts/build_corpus.py)")
    parser.add_argument("--out", type=Path, default=Path(".gpu_shard"))
    parser.add_argument("--hours", type=float, default=0.15, help="training speech to carry")
    parser.add_argument("--test-limit", type=int, default=40, help="test utterances, taken speaker by speaker")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        raise WavTokenizerError(f"{args.out} exists; remove it first")
    print(make_shard(args.corpus, args.out, args.hours, args.test_limit, args.seed))
    return 0


if __name__ == "__main__":
    run_script(main)
