"""One self-contained HTML report (images and audio embedded as data URIs; no scripts, no CDN)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from wavtokenizer_hf.atomic import atomic_path

from .runner import HEADLINE

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.name{text-align:left}tr.baseline td{color:#666;font-style:italic}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}figure{margin:1em 0}.note{color:#555;font-size:0.9em}
"""


def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _audio_uri(wave: torch.Tensor, rate: int) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, wave.reshape(-1).clamp(-1, 1).numpy(), rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def _interval(metric: dict) -> str:
    return f"{metric['value']:.3f} <small>[{metric['low']:.3f}, {metric['high']:.3f}]</small>"


def metric_table(rows: list[dict]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ["codes", "K", "frames", *HEADLINE, "codebook used", "perplexity",
                                             "codes with a word partner"])
    body = []
    for row in rows:
        partner = row.get("word_association")
        partner_text = f"{partner['codes_with_significant_partner']} ({partner['significant_share']:.1%})" if partner else "-"
        cells = [f"<td class=name>{html.escape(row['name'])}</td>", f"<td>{row['codebook_size']}</td>",
                 f"<td>{row['frames']}</td>", *[f"<td>{_interval(row['metrics'][m])}</td>" for m in HEADLINE],
                 f"<td>{row['codebook_used']:.1%}</td>", f"<td>{row['code_perplexity']:.0f}</td>",
                 f"<td>{partner_text}</td>"]
        body.append(f"<tr class={row['kind']}>{''.join(cells)}</tr>")
    return f"<table id=metrics><tr>{head}</tr>{''.join(body)}</table>"


def usage_plot(rows: list[dict]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for row in rows:
        if "usage_counts" in row:
            counts = np.sort(row["usage_counts"])[::-1]
            ax.plot(np.arange(1, len(counts) + 1), np.maximum(counts, 0.8), label=row["name"],
                    linestyle="--" if row["kind"] == "baseline" else "-")
    ax.set(xscale="log", yscale="log", xlabel="code rank", ylabel="frames", title="Code usage (sorted)")
    ax.legend(fontsize=7)
    return _figure_uri(fig)


def heatmap_plot(row: dict, max_codes: int = 60, max_labels: int = 40) -> str:
    import matplotlib.pyplot as plt

    counts, labels = row["heatmap"]["counts"].astype(float), row["heatmap"]["labels"]
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
           title=f"p(phone | code), {row['name']}")
    fig.colorbar(image, ax=ax, fraction=0.02)
    return _figure_uri(fig)


def steps_plot(rows: list[dict]) -> str | None:
    import matplotlib.pyplot as plt

    stepped = sorted((r for r in rows if r.get("step") is not None and r["kind"] == "codec"), key=lambda r: r["step"])
    if len(stepped) < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, metric in zip(axes, ("pnmi", "mapping_accuracy")):
        steps = [r["step"] for r in stepped]
        values = np.array([[r["metrics"][metric][k] for k in ("value", "low", "high")] for r in stepped])
        ax.errorbar(steps, values[:, 0], yerr=[np.maximum(values[:, 0] - values[:, 1], 0), np.maximum(values[:, 2] - values[:, 0], 0)],
                    marker="o", capsize=3, label="codec")
        for row in rows:
            if row["kind"] == "baseline":
                ax.axhline(row["metrics"][metric]["value"], linestyle="--", linewidth=1, label=row["name"],
                           color="gray" if "random" in row["name"] or "shuffled" in row["name"] else "tab:orange")
        ax.set(xlabel="training step", ylabel=metric, title=f"{metric} vs. training step")
    axes[1].legend(fontsize=7)
    return _figure_uri(fig)


def example_plot(utterance, codes: np.ndarray, frame_rate: float) -> str:
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


def association_table(assoc: dict, title: str, top: int = 20) -> str:
    rows = "".join(f"<tr><td>{p['code']}</td><td class=name>{html.escape(str(p['unit']))}</td><td>{p['count']}</td>"
                   f"<td>{p['npmi']:.3f}</td><td>{p['p_value']:.1e}</td></tr>" for p in assoc["top_pairs"][:top])
    return (f"<h3>{title}</h3><p class=note>{assoc['pairs_tested']} pairs with at least 5 co-occurrences; "
            f"{assoc['codes_with_significant_partner']} of {assoc.get('codes_seen', 0)} codes seen have a significant "
            f"partner (binomial test, Bonferroni, alpha 0.01).</p>"
            f"<table class=npmi><tr><th>code</th><th>unit</th><th>count</th><th>NPMI</th><th>p</th></tr>{rows}</table>")


def write_report(result: dict, path: str | Path, examples: int = 2) -> Path:
    """Write the HTML report of `run_probes`'s result."""
    rows = result["rows"]
    main = rows[0]
    utterances = result["_report"]["utterances"]
    coded = result["_report"]["coded"][0]
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>Codec token alignment report</title>"
             f"<style>{STYLE}</style></head><body>",
             "<h1>How codec tokens align with phones and words</h1>",
             f"<p>{result['utterances']} utterances ({result['seconds']:.0f} s) from <code>{html.escape(result['source'])}"
             f"</code>, split <code>{result['split']}</code>. Frame labels: the phone/word covering each frame's centre"
             f"{' (silence frames dropped)' if result['drop_silence'] else ' (silence is its own label)'}. Brackets: "
             f"95% bootstrap intervals over utterances ({result['bootstrap_rounds']} rounds; the spread of the "
             "resampled values placed around the estimate). Baselines use the first codec's K and frames; the "
             "log-mel k-means is fitted on these same frames, which favours it.</p>",
             "<h2>Metrics</h2>", metric_table(rows),
             "<p class=note>PNMI = I(phone; code) / H(phone); mapping accuracy = majority phone of each code learned on "
             "half of the utterances, scored on the other half. Phone purity grows with K; compare rows with equal K."
             "</p>"]
    steps = steps_plot(rows)
    parts += ["<h2>Plots</h2>", f"<figure><img alt='code usage' src='{usage_plot(rows)}'></figure>",
              f"<figure><img alt='phone by code heat map' src='{heatmap_plot(main)}'></figure>"]
    if steps:
        parts.append(f"<figure><img alt='metrics vs training step' src='{steps}'></figure>")
    parts.append("<h2>Codes and words (NPMI)</h2>")
    parts.append(association_table(main["word_association"], f"{html.escape(main['name'])}: code / word"))
    if "token_association" in main:
        parts.append(association_table(main["token_association"], f"{html.escape(main['name'])}: code / text token"))
    if "lm_embeddings" in result:
        e = result["lm_embeddings"]
        nearest = "".join(f"<tr><td>{code}</td><td class=name>{html.escape(' '.join(tokens))}</td></tr>"
                          for code, tokens in list(e["nearest_text_tokens"].items())[:20])
        parts.append(f"<h2>LM embeddings</h2><p>LM <code>{html.escape(e['lm'])}</code>: retrieval of a code's "
                     f"significant word among its {e['retrieval_k']} nearest text tokens: {e['retrieval_at_k']:.1%} of "
                     f"{e['retrieval_codes']} codes (chance {e['retrieval_chance']:.1%}); linear CKA between frame code "
                     f"embeddings and their word's text-token embeddings {e['cka']:.3f} (shuffled pairing "
                     f"{e['cka_shuffled']:.3f}, {e['cka_frames']} frames).</p>"
                     f"<table id=nearest><tr><th>code</th><th>nearest text tokens</th></tr>{nearest}</table>")
    parts.append("<h2>Examples</h2>")
    codec = coded.extra.get("codec")
    for utterance, codes in list(zip(utterances, coded.codes))[:examples]:
        parts.append(f"<figure><img alt='timeline {html.escape(utterance.id)}' "
                     f"src='{example_plot(utterance, codes, coded.frame_rate)}'></figure>")
        parts.append(f"<p>original <audio controls src='{_audio_uri(utterance.waveform, utterance.rate)}'></audio>")
        if codec is not None and len(codes) >= 2:
            reconstruction = codec.decode(torch.from_numpy(codes)[None]).reshape(-1)
            parts.append(f" reconstruction ({html.escape(coded.name)}) <audio controls "
                         f"src='{_audio_uri(reconstruction, codec.sampling_rate)}'></audio>")
        parts.append("</p>")
    parts.append("</body></html>")
    path = Path(path)
    with atomic_path(path, overwrite=True) as tmp:
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
    return path

