"""Sampling and training speed of audio GPTs per second of audio: single codes against audio-BPE tokens (issue 20).

  python benchmarks/bench_lm_sampling.py --run runs/bpe_cmp/lm-raw --run runs/bpe_cmp/lm-bpe-4096 \\
      --seconds 5 --repeats 3 --out benchmarks/results_lm_sampling.json

Each `--run` is a `train_audio_lm.py` output folder (`model/`, `metrics.json`, `train_summary.json`, and
`audio_bpe/` when it was trained on BPE tokens). Sampling: from `<bos>`, draw audio tokens until `--seconds` of
frames (temperature 1, the same seed), the runs taking turns in each repeat so that a busy machine slows them alike;
the median over repeats is kept. Training: seconds of audio per second of training, from the run's own steps,
batch, block size and held-out tokens per second of audio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lm.audio_bpe import MODEL_SUBDIR, audio_layout, load_audio_bpe  # noqa: E402
from lm.sampling import CachedSampler, SamplingConfig, id_mask  # noqa: E402
from lm.vocabulary import BOS  # noqa: E402
from wavtokenizer_hf.atomic import atomic_path  # noqa: E402
from wavtokenizer_hf.errors import WavTokenizerError  # noqa: E402


def load_run(run: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (run / "model" / "config.json").exists():
        raise WavTokenizerError(f"{run}: no model/ (expected a train_audio_lm.py output folder)")
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    bpe_dir = next((d for d in (run / MODEL_SUBDIR, run / "model" / MODEL_SUBDIR) if d.is_dir()), None)
    layout = audio_layout(tokenizer, load_audio_bpe(bpe_dir) if bpe_dir else None)
    model = AutoModelForCausalLM.from_pretrained(run / "model").eval()
    return model, layout


def sample_seconds(model, layout, frames_wanted: int, seed: int) -> tuple[float, int, int]:
    """(wall seconds, tokens drawn, frames decoded) for one continuation from `<bos>`."""
    frames_of = np.asarray(layout.frames_per_token())
    audio = layout.audio_ids()
    allowed = id_mask(model.get_input_embeddings().weight.shape[0], audio)
    start = time.perf_counter()
    sampler = CachedSampler(model, SamplingConfig(temperature=1.0, top_k=None, top_p=None, seed=seed))
    sampler.feed([layout[BOS]])
    tokens = frames = 0
    while frames < frames_wanted:
        token = sampler.sample(allowed)[0]
        tokens += 1
        frames += int(frames_of[token - audio.start])
    return time.perf_counter() - start, tokens, frames


def training_speed(run: Path) -> dict:
    summary = json.loads((run / "train_summary.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = summary["config"]
    tokens = summary["steps"] * cfg["batch_size"] * cfg["block_size"]
    audio_seconds = tokens / metrics["validation_tokens_per_second"]
    return {"steps": summary["steps"], "train_seconds": summary["seconds"],
            "steps_per_second": summary["steps"] / summary["seconds"],
            "audio_seconds_per_training_second": audio_seconds / summary["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, action="append", required=True, help="train_audio_lm.py output folder")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of audio to sample per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    loaded = {run: load_run(run) for run in args.run}
    timings: dict[Path, list[tuple[float, int, int]]] = {run: [] for run in args.run}
    rates = {run: float(json.loads((run / "metrics.json").read_text())["frame_rate"]) for run in args.run}
    for repeat in range(args.repeats):
        for run, (model, layout) in loaded.items():
            timings[run].append(sample_seconds(model, layout, int(args.seconds * rates[run]), seed=repeat))
    results = {"command": " ".join(sys.argv), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "runs": {}}
    for run, rows in timings.items():
        seconds = statistics.median(r[0] for r in rows)
        tokens, frames = sum(r[1] for r in rows), sum(r[2] for r in rows)
        audio_seconds = frames / len(rows) / rates[run]
        results["runs"][str(run)] = {
            "sampling_tokens_per_second": tokens / len(rows) / seconds,
            "frames_per_token": frames / tokens,
            "sampled_audio_seconds_per_second": audio_seconds / seconds,
            **training_speed(run)}
        r = results["runs"][str(run)]
        print(f"{run}: sampling {r['sampling_tokens_per_second']:.1f} tokens/s x {r['frames_per_token']:.2f} frames/token"
              f" = {r['sampled_audio_seconds_per_second']:.2f} s of audio per second; training "
              f"{r['steps_per_second']:.2f} steps/s = {r['audio_seconds_per_training_second']:.1f} s of audio per second")
    if args.out:
        with atomic_path(args.out, overwrite=True) as tmp:
            tmp.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
