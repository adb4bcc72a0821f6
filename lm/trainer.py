"""The LM training loop, readable top to bottom: packed blocks in, AdamW with warmup + cosine decay, periodic
evaluation for choosing the checkpoint, the best model saved with `save_pretrained` (atomically) beside its
tokenizer. Under several processes (`accelerate launch`) every process trains and only the main one writes."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.run_lock import OutputLock
from wavtokenizer_hf.schedule import warmup_cosine
from wavtokenizer_hf.tracking import check_tracker, flat_config, numeric

from .lora import save_model_folder
from .models import check_block_fits, check_packing
from .tokenizer_files import save_tokenizer


@dataclass
class LMTrainConfig:
    block_size: int = 512
    batch_size: int = 8
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    weight_decay: float = 0.1
    warmup_steps: int = 50
    max_steps: int = 2000
    max_minutes: float | None = None  # stop earlier when this much time on `clock` is used
    clock: str = "wall"  # "wall" time, or "cpu": this process's CPU time (fair between runs sharing the cores)
    grad_clip: float = 1.0
    eval_every: int = 100
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate)
    log_with: str = ""  # an accelerate tracker beside train_log.jsonl: tensorboard, trackio, wandb


def _clock(name: str):
    if name not in ("wall", "cpu"):
        raise WavTokenizerError(f"clock must be 'wall' or 'cpu', not {name!r}")
    return time.process_time if name == "cpu" else time.perf_counter


def _learning_rate(step: int, cfg: LMTrainConfig, elapsed_s: float = 0.0) -> float:
    """`schedule.warmup_cosine` from learning_rate to min_learning_rate, decaying on wall time too under `max_minutes`."""
    time_fraction = elapsed_s / (cfg.max_minutes * 60) if cfg.max_minutes else 0.0
    return cfg.learning_rate * warmup_cosine(step, cfg.warmup_steps, cfg.max_steps,
                                             cfg.min_learning_rate / cfg.learning_rate, time_fraction)


def save_atomically(model, tokenizer, out_dir: Path, files: dict[str, str] | None = None) -> None:
    """save_pretrained (and `files`: name -> text) into a temporary sibling that replaces `out_dir` only when
    complete (`wavtokenizer_hf.atomic.atomic_path`): an interrupted save never looks complete or blocks the next."""
    with atomic_path(out_dir, overwrite=True, is_dir=True) as tmp:
        save_model_folder(model, tmp)  # a PeftModel (lm.lora) is saved merged, its adapter in adapter/
        if tokenizer is not None:
            save_tokenizer(tokenizer, tmp)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)


def train_lm(model, blocks: dict[str, np.ndarray], cfg: LMTrainConfig, out_dir: str | Path, tokenizer=None,
             evaluate: Callable[[torch.nn.Module], dict] | None = None, files: dict[str, str] | None = None) -> dict:
    """Train on packed `blocks` (see `lm.streams.pack_blocks`). `evaluate(model) -> {"loss": ..., ...}` runs every
    `eval_every` steps and at the end; the model with the lowest loss is kept in `out_dir/model`, with the tokenizer
    and `files` (name -> text, e.g. a format note) in the same atomic save. Returns a summary
    with the history of logged values; `main_process` says whether this process wrote (all return after it has)."""
    from wavtokenizer_hf.extras import require

    Accelerator = require("accelerate", "LM training").Accelerator
    from accelerate.utils import set_seed

    out_dir = Path(out_dir)
    if blocks["input_ids"].shape[1] != cfg.block_size:
        raise WavTokenizerError(f"blocks have length {blocks['input_ids'].shape[1]}, config says {cfg.block_size}")
    check_block_fits(model, cfg.block_size)
    check_packing(model, cfg.batch_size)
    set_seed(cfg.seed)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available(),
                              log_with=check_tracker(cfg.log_with), project_dir=str(out_dir))
    main = accelerator.is_main_process
    with OutputLock(out_dir, "LM training run") if main else contextlib.nullcontext():
        summary = _train(model, blocks, cfg, out_dir, tokenizer, evaluate, accelerator, files)
    accelerator.wait_for_everyone()  # the others may read out_dir/model once the main process has written it
    return {**summary, "main_process": main}


def _append(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _optimizer(model, cfg: LMTrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate, betas=(0.9, 0.95))


def _train(model, blocks, cfg: LMTrainConfig, out_dir: Path, tokenizer, evaluate, accelerator, files) -> dict:
    main = accelerator.is_main_process
    if cfg.log_with:
        accelerator.init_trackers(out_dir.name, config=flat_config(asdict(cfg)))
    data = torch.utils.data.TensorDataset(*(torch.from_numpy(blocks[k]).long()
                                            for k in ("input_ids", "labels", "position_ids")))
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=len(data) > cfg.batch_size,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    model, optimizer, loader = accelerator.prepare(model, _optimizer(model, cfg), loader)

    history: list[dict] = []
    best = {"loss": float("inf"), "step": -1}
    log_path = out_dir / "train_log.jsonl"
    if main:
        log_path.unlink(missing_ok=True)

    def log(record: dict, step: int) -> None:
        history.append(record)
        if main:
            _append(log_path, record)
        if cfg.log_with:
            accelerator.log(numeric(record), step=step)

    def run_eval(step: int) -> None:
        if evaluate is None:
            return
        model.eval()
        metrics = evaluate(accelerator.unwrap_model(model))
        model.train()
        log({"step": step, "elapsed_s": round(now() - start, 1),
             **{f"val_{k}": v for k, v in metrics.items()}}, step)
        if metrics["loss"] < best["loss"]:
            best.update(loss=metrics["loss"], step=step)
            if main:
                save_atomically(accelerator.unwrap_model(model), tokenizer, out_dir / "model", files)
        if main:
            bar.write(f"step {step}: evaluation loss {metrics['loss']:.4f}"
                      + "".join(f", {k} {v:.4g}" for k, v in metrics.items() if k != "loss" and isinstance(v, float)))

    now = _clock(cfg.clock)
    start = now()

    def elapsed() -> float:
        """Seconds on the run's clock, the largest over processes: all of them stop at the same step."""
        seconds = torch.tensor(now() - start, device=accelerator.device)
        if accelerator.num_processes > 1:
            torch.distributed.all_reduce(seconds, op=torch.distributed.ReduceOp.MAX)
        return float(seconds)

    model.train()
    step, batches = 0, iter(loader)
    bar = tqdm(total=cfg.max_steps, desc="LM training", unit="step", dynamic_ncols=True, disable=not main)
    run_eval(0)
    while step < cfg.max_steps:
        spent = elapsed() if cfg.max_minutes is not None else 0.0
        if cfg.max_minutes is not None and spent > cfg.max_minutes * 60:
            if main:
                bar.write(f"time limit of {cfg.max_minutes:g} min reached at step {step}")
            break
        try:
            input_ids, labels, position_ids = next(batches)
        except StopIteration:
            batches = iter(loader)
            input_ids, labels, position_ids = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = lr = _learning_rate(step, cfg, spent)
        # no attention_mask and no cache: position_ids restarting at 0 make the causal mask block-diagonal
        # (lm/streams.py; lm.models.check_packing has refused models that would ignore them)
        loss = model(input_ids=input_ids, labels=labels, position_ids=position_ids, use_cache=False).loss
        accelerator.backward(loss)
        if cfg.grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0:
            log({"step": step, "train_loss": round(loss.item(), 4), "lr": lr,
                 "elapsed_s": round(now() - start, 1)}, step)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
            run_eval(step)
    run_eval(step)
    bar.close()
    if cfg.log_with:
        accelerator.end_training()
    if evaluate is None and main:
        save_atomically(accelerator.unwrap_model(model), tokenizer, out_dir / "model", files)
    summary = {"steps": step, "seconds": round(now() - start, 1), "clock": cfg.clock, "best_step": best["step"],
               "best_val_loss": best["loss"], "config": asdict(cfg), "history": history}
    if main:
        with atomic_path(out_dir / "train_summary.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(summary, indent=2))
    return summary
