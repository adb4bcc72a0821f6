"""The report's figures, each a PNG data URI."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch

from .data import ProbeUtterance
from .result import ProbeRow


def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def usage_plot(rows: list[ProbeRow]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for row in rows:
        if row.usage_counts is not None:
            counts = np.sort(row.usage_counts)[::-1]
            ax.plot(np.arange(1, len(counts) + 1), np.maximum(counts, 0.8), label=row.name,
                    linestyle="--" if row.kind == "baseline" else "-")
    ax.set(xscale="log", yscale="log", xlabel="code rank", ylabel="frames", title="Code usage (sorted)")
    ax.legend(fontsize=7)
    return _figure_uri(fig)


def heatmap_plot(row: ProbeRow, max_codes: int = 60, max_labels: int = 40) -> str:
    import matplotlib.pyplot as plt

    counts, labels = row.heatmap_counts.astype(float), row.heatmap_labels
    label_order = np.argsort(-counts.sum(1))[:max_labels]
    code_order = np.argsort(-counts.sum(0))[:max_codes]
    sub = counts[np.ix_(label_order, code_order)]
    p_label_given_code = sub / np.maximum(sub.sum(0, keepdims=True), 1)
    code_order_by_majority = np.lexsort((-p_label_given_code.max(0), p_label_given_code.argmax(0)))
    fig, ax = plt.subplots(figsize=(11, 6))
    image = ax.imshow(p_label_given_code[:, code_order_by_majority], aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(len(label_order)), [labels[i] for i in label_order], fontsize=7)
    ax.set_xticks(range(len(code_order)), [str(code_order[i]) for i in code_order_by_majority], fontsize=6,
                  rotation=90)
    ax.set(xlabel="code (most frequent, grouped by majority phone)", ylabel="phone",
           title=f"p(phone | code), {row.name}")
    fig.colorbar(image, ax=ax, fraction=0.02)
    return _figure_uri(fig)


def steps_plot(rows: list[ProbeRow]) -> str | None:
    import matplotlib.pyplot as plt

    stepped = sorted((r for r in rows if r.step is not None and r.kind == "codec"), key=lambda r: r.step)
    if len(stepped) < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, metric in zip(axes, ("pnmi_adjusted", "mapping_accuracy_adjusted")):
        steps = [r.step for r in stepped]
        values = np.array([[r.metrics[metric][k] for k in ("value", "low", "high")] for r in stepped])
        ax.errorbar(steps, values[:, 0], yerr=[np.maximum(values[:, 0] - values[:, 1], 0), np.maximum(values[:, 2] - values[:, 0], 0)],
                    marker="o", capsize=3, label="codec")
        for row in rows:
            if row.kind == "baseline":
                ax.axhline(row.metrics[metric]["value"], linestyle="--", linewidth=1, label=row.name,
                           color="gray" if "random" in row.name or "shuffled" in row.name else "tab:orange")
        ax.set(xlabel="training step", ylabel=metric, title=f"{metric} vs. training step")
    axes[1].legend(fontsize=7)
    return _figure_uri(fig)


def example_plot(utterance: ProbeUtterance, codes: np.ndarray, frame_rate: float) -> str:
    import matplotlib.pyplot as plt
    import torchaudio

    wave = utterance.waveform
    spec = torchaudio.transforms.MelSpectrogram(utterance.rate, n_fft=1024, hop_length=256, n_mels=80)(wave[None])[0]
    seconds = wave.numel() / utterance.rate
    fig, axes = plt.subplots(4, 1, figsize=(12, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 0.6, 0.6, 0.8]})
    axes[0].imshow(torch.log(spec.clamp_min(1e-6)).numpy(), origin="lower", aspect="auto", extent=[0, seconds, 0, 80])
    axes[0].set(ylabel="mel band", title=f"{utterance.id}: {utterance.text}")
    for ax, intervals, name in ((axes[1], utterance.phones, "phones"), (axes[2], utterance.words, "words")):
        for i, interval in enumerate(intervals):
            ax.axvspan(interval.start, interval.end, color="C0" if i % 2 else "C1", alpha=0.25)
            ax.text((interval.start + interval.end) / 2, 0.5, interval.label, ha="center", va="center",
                    fontsize=6 if name == "phones" else 8, clip_on=True)
        ax.set(yticks=[], ylabel=name)
    times = np.arange(len(codes)) / frame_rate
    axes[3].imshow((codes[None] % 20), aspect="auto", cmap="tab20", extent=[0, len(codes) / frame_rate, 0, 1],
                   interpolation="nearest")
    step = max(1, len(codes) // 40)
    for t in range(0, len(codes), step):
        axes[3].text(times[t] + 0.5 / frame_rate, 0.5, str(int(codes[t])), fontsize=5, rotation=90, ha="center",
                     va="center")
    axes[3].set(yticks=[], ylabel="codes", xlabel="seconds", xlim=(0, seconds))
    return _figure_uri(fig)
