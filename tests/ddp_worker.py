"""One process of a real multi-process codec training (launched by tests with `torchrun --nproc_per_node 2`).

Writes `rank<R>.json` (world size, the batches it saw, how often the quantiser's broadcast/all-reduce paths ran)
and `rank<R>.safetensors` (its codebook buffers and generator weights) into `--report`.
  torchrun --nproc_per_node 2 tests/ddp_worker.py --out OUT --report DIR --corpus CORPUS --steps 4 [--nan-rank 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import MICRO  # noqa: E402

from wavtokenizer_hf.training import Trainer, load_train_config  # noqa: E402
from wavtokenizer_hf.training import vq  # noqa: E402


class CountingDist:
    """torch.distributed as the quantiser sees it, counting its collective calls."""

    def __init__(self, real):
        self.real, self.calls = real, {"broadcast": 0, "all_reduce": 0}

    def __getattr__(self, name):
        return getattr(self.real, name)

    def broadcast(self, *args, **kwargs):
        self.calls["broadcast"] += 1
        return self.real.broadcast(*args, **kwargs)

    def all_reduce(self, *args, **kwargs):
        self.calls["all_reduce"] += 1
        return self.real.all_reduce(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--nan-rank", type=int, default=-1, help="this rank gets a NaN batch at step 2")
    args = parser.parse_args()

    counting = CountingDist(vq.dist)
    vq.dist = counting
    cfg = load_train_config("tiny", [f"data.train={args.corpus}", *MICRO, "loss.gan_start_step=2",
                                     "quantizer.dead_code_threshold=3.0"])  # codes die: the re-seeding path runs
    trainer = Trainer(cfg, args.out)
    rank = trainer.accelerator.process_index
    seen, real_step = [], trainer.train_step

    def recording_step(audio: torch.Tensor, *targets) -> dict:
        seen.append(hashlib.sha256(audio.numpy().tobytes()).hexdigest()[:16])
        if rank == args.nan_rank and trainer.step == 1:
            audio = audio * float("nan")
        return real_step(audio, *targets)

    trainer.train_step = recording_step
    trainer.fit(args.steps)
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    book = generator.quantizer.codebook
    args.report.mkdir(parents=True, exist_ok=True)
    tensors = {f"codebook.{name}": getattr(book, name).detach().clone() for name in ("embed", "embed_avg", "cluster_size")}
    tensors.update({f"generator.{k}": v.detach().clone().contiguous() for k, v in generator.model.state_dict().items()})
    save_file(tensors, args.report / f"rank{rank}.safetensors")
    report = {"rank": rank, "world_size": trainer.accelerator.num_processes,
              "distributed_type": str(trainer.accelerator.distributed_type), "batches": seen,
              "quantizer_calls": counting.calls, "skipped": trainer.skipped, "step": trainer.step,
              "codebook_updates": int(generator.quantizer.updates)}
    (args.report / f"rank{rank}.json").write_text(json.dumps(report))
    trainer.close()


if __name__ == "__main__":
    main()
