"""The LM training loop, readable top to bottom: packed blocks in, AdamW with warmup + cosine decay, periodic
held-out evaluation, the best model saved with `save_pretrained` (atomically) beside its tokenizer."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.run_lock import OutputLock
from wavtokenizer_hf.schedule import warmup_cosine
from wavtokenizer_hf.tracking import check_tracker, flat_config, numeric


@dataclass
class LMTrainConfig:
    block_size: int = 512
    batch_size: int = 8
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    weight_decay: float = 0.1
    warmup_steps: int = 50
    max_steps: int = 2000
    max_minutes: float | None = None  # stop earlier when this wall time is used
    grad_clip: float = 1.0
    eval_every: int = 100
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate)
    log_with: str = ""  # an accelerate tracker beside train_log.jsonl: tensorboard, trackio, wandb


def _learning_rate(step: int, cfg: LMTrainConfig, elapsed_s: float = 0.0) -> float:
    """`schedule.warmup_cosine` from learning_rate to min_learning_rate, decaying on wall time too under `max_minutes`."""
    time_fraction = elapsed_s / (cfg.max_minutes * 60) if cfg.max_minutes else 0.0
    return cfg.learning_rate * warmup_cosine(step, cfg.warmup_steps, cfg.max_steps,
                                             cfg.min_learning_rate / cfg.learning_rate, time_fraction)


def save_atomically(model, tokenizer, out_dir: Path) -> None:
    """save_pretrained into a temporary folder, then swap it in: an interrupted save never looks complete."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    old = out_dir.with_name(out_dir.name + ".old")
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def train_lm(model, blocks: dict[str, np.ndarray], cfg: LMTrainConfig, out_dir: str | Path, tokenizer=None,
             evaluate: Callable[[torch.nn.Module], dict] | None = None) -> dict:
    """Train on packed `blocks` (see `lm.streams.pack_blocks`). `evaluate(model) -> {"loss": ..., ...}` runs every
    `eval_every` steps and at the end; the model with the lowest held-out loss is kept in `out_dir/model`.
    Returns a summary with the history of logged values."""
    from wavtokenizer_hf.extras import require

    Accelerator = require("accelerate", "LM training").Accelerator
    from accelerate.utils import set_seed

    out_dir = Path(out_dir)
    with OutputLock(out_dir, "LM training run"):
        return _train(model, blocks, cfg, out_dir, tokenizer, evaluate, Accelerator, set_seed)


def _train(model, blocks, cfg: LMTrainConfig, out_dir: Path, tokenizer, evaluate, Accelerator, set_seed) -> dict:
    if blocks["input_ids"].shape[1] != cfg.block_size:
        raise WavTokenizerError(f"blocks have length {blocks['input_ids'].shape[1]}, config says {cfg.block_size}")
    set_seed(cfg.seed)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available(),
                              log_with=check_tracker(cfg.log_with), project_dir=str(out_dir))
    if cfg.log_with:
        accelerator.init_trackers(out_dir.name, config=flat_config(asdict(cfg)))
    data = torch.utils.data.TensorDataset(*(torch.from_numpy(blocks[k]).long()
                                            for k in ("input_ids", "labels", "position_ids")))
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=len(data) > cfg.batch_size,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate, betas=(0.9, 0.95))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    history: list[dict] = []
    best = {"loss": float("inf"), "step": -1}
    log_path = out_dir / "train_log.jsonl"
    log_path.unlink(missing_ok=True)

    def run_eval(step: int) -> None:
        if evaluate is None:
            return
        model.eval()
        metrics = evaluate(accelerator.unwrap_model(model))
        model.train()
        record = {"step": step, "elapsed_s": round(time.perf_counter() - start, 1),
                  **{f"val_{k}": v for k, v in metrics.items()}}
        history.append(record)
        with log_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if cfg.log_with:
            accelerator.log(numeric(record), step=step)
        if metrics["loss"] < best["loss"]:
            best.update(loss=metrics["loss"], step=step)
            save_atomically(accelerator.unwrap_model(model), tokenizer, out_dir / "model")
        bar.write(f"step {step}: held-out loss {metrics['loss']:.4f}"
                  + "".join(f", {k} {v:.4g}" for k, v in metrics.items() if k != "loss" and isinstance(v, float)))

    start = time.perf_counter()
    model.train()
    step, batches = 0, iter(loader)
    bar = tqdm(total=cfg.max_steps, desc="LM training", unit="step", dynamic_ncols=True)
    run_eval(0)
    while step < cfg.max_steps:
        if cfg.max_minutes is not None and time.perf_counter() - start > cfg.max_minutes * 60:
            bar.write(f"time limit of {cfg.max_minutes:g} min reached at step {step}")
            break
        try:
            input_ids, labels, position_ids = next(batches)
        except StopIteration:
            batches = iter(loader)
            input_ids, labels, position_ids = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = lr = _learning_rate(step, cfg, time.perf_counter() - start)
        # no attention_mask: position_ids restarting at 0 make the causal mask block-diagonal (lm/streams.py)
        loss = model(input_ids=input_ids, labels=labels, position_ids=position_ids, use_cache=False).loss
        accelerator.backward(loss)
        if cfg.grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0:
            record = {"step": step, "train_loss": round(loss.item(), 4), "lr": lr,
                      "elapsed_s": round(time.perf_counter() - start, 1)}
            history.append(record)
            with log_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            if cfg.log_with:
                accelerator.log(numeric(record), step=step)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
            run_eval(step)
    run_eval(step)
    bar.close()
    if cfg.log_with:
        accelerator.end_training()
    if evaluate is None:
        save_atomically(accelerator.unwrap_model(model), tokenizer, out_dir / "model")
    summary = {"steps": step, "seconds": round(time.perf_counter() - start, 1), "best_step": best["step"],
               "best_val_loss": best["loss"], "config": asdict(cfg), "history": history}
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
