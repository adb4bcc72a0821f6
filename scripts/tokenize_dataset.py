"""Tokenize an audio folder, a saved dataset or a JSONL manifest into parquet shards, resumably.

  python scripts/tokenize_dataset.py INPUT OUT --model wavtokenizer                       # one machine
  python scripts/tokenize_dataset.py INPUT OUT --model M --num-shards 64 --shard-index $SLURM_ARRAY_TASK_ID
  python scripts/tokenize_dataset.py INPUT OUT --num-shards 64 --check                    # all shards complete?
  python scripts/tokenize_dataset.py INPUT OUT --model M --engine ray --address HEAD:6379  # a Ray cluster

Each shard is a contiguous, deterministic slice of the input; its parts are written atomically, so a killed job
rerun with the same arguments skips finished parts and redoes only the unfinished one. A rerun with other input or
--rows-per-part is refused (the shard's _PLAN.json), as is a second process on a shard that one is writing.

With --engine ray the job runs on a Ray cluster (--address HOST:PORT of its head; none: a local one): decoding in
CPU tasks, encoding in an actor pool (one GPU per actor where there are GPUs), parts written as one shard
(shard-00000-of-00001), so --check and the loaders read it as any other. INPUT may also be a parquet file or folder
(an `id` and an audio column) or a URI that pyarrow's filesystems open (s3://..., gs://...). Bad files are recorded,
never fatal (as --skip-errors).
"""

import argparse
import json
from pathlib import Path

from wavtokenizer_hf.errors import WavTokenizerError, run_script
from wavtokenizer_hf.tokenization import check_output, tokenize_shard


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=str, help="audio folder, saved dataset, JSONL manifest (--engine ray: also "
                        "parquet, URIs)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", type=Path, default=Path("wavtokenizer"))
    parser.add_argument("--split", default="train", help="split of a saved DatasetDict")
    parser.add_argument("--audio-column", default="audio", help="the audio column of a saved dataset")
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--shard-index", type=int, default=0)
    parser.add_argument("--rows-per-part", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-errors", action="store_true",
                        help="skip unreadable or invalid audio (listed in the shard's _COMPLETE.json) instead of stopping")
    parser.add_argument("--check", action="store_true", help="only verify that all shards are complete")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--address", default=None, help="--engine ray: the cluster's head, HOST:PORT (or 'auto')")
    parser.add_argument("--encoders", type=int, default=None,
                        help="--engine ray: encoding actors (default: one per GPU, else one per two CPUs)")
    args = parser.parse_args()
    if args.engine == "ray":
        if args.num_shards != 1 or args.shard_index != 0 or args.check:
            raise WavTokenizerError("--engine ray runs the whole job as one shard: drop --num-shards, --shard-index "
                                    "and --check (check with --num-shards 1 --check)")
        from wavtokenizer_hf.ray_tokenize import tokenize_with_ray

        summary = tokenize_with_ray(str(args.input), args.out, args.model, args.address, args.split,
                                    args.audio_column, args.rows_per_part, args.batch_size, args.encoders)
        print(json.dumps(summary, indent=2))
        return 0
    if args.address or args.encoders:
        raise WavTokenizerError("--address and --encoders are options of --engine ray")
    if args.check:
        report = check_output(args.out, args.num_shards)
        print(json.dumps(report, indent=2))
        return 0 if report["ok"] else 1
    summary = tokenize_shard(Path(args.input), args.out, args.model, args.num_shards, args.shard_index,
                             args.rows_per_part, args.split, args.batch_size, args.skip_errors, args.audio_column)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    run_script(main)
