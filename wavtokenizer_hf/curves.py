"""Training curves as a PNG: codec runs (`log.jsonl`: mel loss and held-out evaluations) and LM runs
(`train_log.jsonl`: training loss and the selection split's loss), against steps and wall-clock minutes."""

from __future__ import annotations

from pathlib import Path

from .atomic import atomic_path
from .errors import WavTokenizerError
from .extras import require
from .listing import read_jsonl


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `run_dir/curves.png` (or `out`) and return its path."""
    matplotlib = require("matplotlib", "plotting")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    codec_log, lm_log = run_dir / "log.jsonl", run_dir / "train_log.jsonl"
    if codec_log.exists():
        records = read_jsonl(codec_log)
        train = [r for r in records if "mel" in r and "step" in r]
        evals = [r for r in records if r.get("event") == "eval"]
        series = [("mel loss (training batches)", train, "mel", "seconds")]
        series += [(f"held-out {key}", evals, key, None) for key in ("mel_distance", "stoi") if evals]
    elif lm_log.exists():
        records = read_jsonl(lm_log)
        train = [r for r in records if "train_loss" in r]
        evals = [r for r in records if "val_loss" in r]
        series = [("training loss (nats/token)", train, "train_loss", "elapsed_s"),
                  ("selection-split loss (nats/token)", evals, "val_loss", "elapsed_s")]
    else:
        raise WavTokenizerError(f"{run_dir}: no log.jsonl (codec run) or train_log.jsonl (LM run)")
    series = [s for s in series if s[1]]
    if not series:
        raise WavTokenizerError(f"{run_dir}: the log has no steps yet")
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.6), squeeze=False)
    for ax, (title, rows, key, seconds_key) in zip(axes[0], series):
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="o" if len(rows) < 30 else None)
        ax.set(title=title, xlabel="step")
        if seconds_key and rows[-1].get(seconds_key):
            top = ax.secondary_xaxis("top", functions=_step_to_minutes(rows, seconds_key))
            top.set_xlabel("minutes")
    out = Path(out) if out else run_dir / "curves.png"
    with atomic_path(out, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    return out


def _step_to_minutes(rows: list[dict], key: str):
    import numpy as np

    steps = np.array([r["step"] for r in rows], dtype=float)
    minutes = np.array([r[key] / 60 for r in rows], dtype=float)
    return (lambda s: np.interp(s, steps, minutes), lambda m: np.interp(m, minutes, steps))


def plot_scores(rows: list[dict], out: str | Path, keys: tuple[str, ...] = ("stoi", "mel_distance"),
                title: str = "") -> Path:
    """One panel per metric against minutes of training (rows from `evaluation.snapshots.score_snapshots`)."""
    return plot_comparison({"": rows}, out, keys, title)


def plot_comparison(series: dict[str, list[dict]], out: str | Path, keys: tuple[str, ...],
                    title: str = "", xlabel: str = "minutes of training") -> Path:
    """One panel per metric, one line per labelled run, against minutes (rows with `minutes` and the keys)."""
    matplotlib = require("matplotlib", "plotting")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {label: [r for r in rows if r.get("minutes") is not None] for label, rows in series.items()}
    if not any(series.values()):
        raise WavTokenizerError("no scored snapshots with a training time to plot")
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, rows in series.items():
            points = [(r["minutes"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=label or None)
        ax.set(title=f"{title} {key}".strip(), xlabel=xlabel)
    if any(series):
        axes[0][0].legend(fontsize=8)
    out = Path(out)
    with atomic_path(out, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    return out
