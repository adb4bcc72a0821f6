"""Tokenizing the same audio four ways on this machine: `datasets.map` (this package's callable, `--num-proc`
processes), the sharded job (one process, every core), and the Ray job on a loopback cluster of one and of two
worker nodes (one encoder actor per node); audio seconds per second of wall time, Ray's overhead per file, and the
time to tokenize 10,000 hours on N machines extrapolated from the measured rates.

  python benchmarks/bench_ray_tokenize.py --data runs/voices --minutes 30 --out benchmarks/results_ray_tokenize.json

Every job writes to a fresh folder; the codes of every row are compared across the four (they must be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from datasets import load_from_disk

from wavtokenizer_hf.tokenization import DatasetTokenizer, tokenize_shard

from bench_inference import cpu_model  # run as a script from benchmarks/, so its folder is on sys.path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the loopback cluster binds 127.0.0.1 only


def audio_subset(data: str, split: str, minutes: float, seed: int, folder: Path) -> tuple[Path, float]:
    """A saved dataset of `minutes` of the split's audio (rows drawn with `seed`), with an `id` column."""
    rows = load_from_disk(data)[split]
    order = np.random.default_rng(seed).permutation(len(rows))
    durations = rows["duration"]
    chosen, seconds = [], 0.0
    for index in order:
        if seconds >= minutes * 60:
            break
        chosen.append(int(index))
        seconds += durations[index]
    subset = rows.select(sorted(chosen)).select_columns(["id", "audio"]).flatten_indices()
    subset.save_to_disk(str(folder))
    return folder, seconds


def codes_of(out: Path) -> dict[str, list[int]]:
    found = {}
    for part in sorted(out.rglob("part-*.parquet")):
        table = pq.read_table(part, columns=["id", "audio_codes"]).to_pydict()
        found.update(zip(table["id"], table["audio_codes"]))
    return found


def timed(run) -> tuple[float, object]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def ray_job(data: Path, one_row: Path, out: Path, model: str, nodes: int, batch_size: int) -> tuple[float, float]:
    """(seconds for the whole job, seconds for a one-file job on the same warm cluster: the fixed cost of a job,
    actors started and the model loaded)."""
    import ray
    from ray.cluster_utils import Cluster

    from wavtokenizer_hf.ray_tokenize import tokenize_with_ray

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(nodes):
        cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        run = lambda source, target: tokenize_with_ray(source, target, model, cluster.address,  # noqa: E731
                                                       batch_size=batch_size, encoders=nodes, progress=False)
        startup, _ = timed(lambda: run(one_row, out.with_name(out.name + "_one")))
        seconds, _ = timed(lambda: run(data, out))
    finally:
        ray.shutdown()
        cluster.shutdown()
    return seconds, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="wavtokenizer_hf/default_codec")
    parser.add_argument("--data", required=True, help="a saved corpus")
    parser.add_argument("--split", default="train")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        data, audio_seconds = audio_subset(args.data, args.split, args.minutes, args.seed, work / "data")
        rows = load_from_disk(str(data))
        files = len(rows)
        results: dict[str, float] = {}

        results["datasets.map"], mapped = timed(lambda: rows.map(
            DatasetTokenizer(args.model), batched=True, batch_size=args.batch_size, with_rank=True,
            num_proc=args.num_proc, remove_columns=["audio"]))
        reference = {i: list(c) for i, c in zip(mapped["id"], mapped["audio_codes"])}
        results["sharded job (1 process)"], _ = timed(lambda: tokenize_shard(
            data, work / "shard", args.model, batch_size=args.batch_size))
        agree = {"sharded job (1 process)": codes_of(work / "shard") == reference}
        rows.select([0]).save_to_disk(str(work / "one"))
        startup = {}
        for nodes in (1, 2):
            name = f"ray, {nodes} worker node(s)"
            results[name], startup[name] = ray_job(data, work / "one", work / f"ray{nodes}", args.model, nodes,
                                                   args.batch_size)
            agree[name] = codes_of(work / f"ray{nodes}") == reference
        rates = {name: audio_seconds / seconds for name, seconds in results.items()}
        steady = {name: audio_seconds / max(results[name] - startup[name], 1e-9) for name in startup}
        overhead = (results["ray, 1 worker node(s)"] - startup["ray, 1 worker node(s)"]
                    - results["sharded job (1 process)"]) / files
        best = max(steady.values())
        hours = 10_000 * 3600
        estimate = {f"{n} machines like this one": round(hours / (best * n) / 3600, 1) for n in (1, 10, 100)}
        result = {"audio_minutes": round(audio_seconds / 60, 2), "files": files, "num_proc": args.num_proc,
                  "batch_size": args.batch_size, "wall_seconds": {k: round(v, 1) for k, v in results.items()},
                  "audio_seconds_per_second": {k: round(v, 1) for k, v in rates.items()},
                  "codes_equal_to_datasets_map": agree,
                  "ray_job_fixed_seconds (a one-file job on the warm cluster)": {k: round(v, 1) for k, v in startup.items()},
                  "ray_audio_seconds_per_second_past_the_fixed_cost": {k: round(v, 1) for k, v in steady.items()},
                  "ray_overhead_seconds_per_file_vs_sharded_job (fixed cost removed)": round(overhead, 3),
                  "hours_for_10000_h_at_the_best_ray_rate": estimate,
                  "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                  "ray": __import__("ray").__version__}
        print(json.dumps(result, indent=2))
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
