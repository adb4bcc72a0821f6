"""One self-contained HTML report (images and audio embedded as data URIs; no scripts, no CDN)."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import soundfile as sf
import torch

from wavtokenizer_hf.atomic import atomic_path

from .metrics import HEADLINE, PAIRED
from .plots import example_plot, heatmap_plot, steps_plot, usage_plot
from .result import ProbeResult, ProbeRow, TokenVocabulary

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1250px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.name{text-align:left}tr.baseline td{color:#666;font-style:italic}
tr.bpe td{background:#f7fbff}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}figure{margin:1em 0}.note{color:#555;font-size:0.9em}
"""
TITLES = {"pnmi": "PNMI", "pnmi_adjusted": "PNMI − null", "mapping_accuracy": "mapping accuracy",
          "majority_accuracy": "majority class", "mapping_accuracy_adjusted": "mapping − null",
          "phone_purity": "phone purity", "code_purity": "code purity", "v_measure": "V-measure"}


def _audio_uri(wave: torch.Tensor, rate: int) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, wave.reshape(-1).clamp(-1, 1).numpy(), rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def _interval(metric: dict, signed: bool = False) -> str:
    if math.isnan(metric["low"]):
        return f"{metric['value']:+.3f}" if signed else f"{metric['value']:.3f}"
    form = "+.3f" if signed else ".3f"
    return f"{metric['value']:{form}} <small>[{metric['low']:{form}}, {metric['high']:{form}}]</small>"


def metric_table(rows: list[ProbeRow]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ["codes", "K", "frames", *(TITLES[m] for m in HEADLINE), "PNMI null",
                                             "codebook used", "perplexity", "codes with a word partner"])
    body = []
    for row in rows:
        partner = row.word_association
        partner_text = (f"{partner['codes_with_significant_partner']} of {partner['codes_seen']}"
                        if partner else "-")
        cells = [f"<td class=name>{html.escape(row.name)}</td>", f"<td>{row.codebook_size}</td>",
                 f"<td>{row.frames}</td>", *[f"<td>{_interval(row.metrics[m])}</td>" for m in HEADLINE],
                 f"<td>{row.metrics['pnmi_null']['value']:.3f}</td>" if "pnmi_null" in row.metrics else "<td>-</td>",
                 f"<td>{row.codebook['codebook_used']:.1%}</td>", f"<td>{row.codebook['code_perplexity']:.0f}</td>",
                 f"<td>{partner_text}</td>"]
        body.append(f"<tr class={row.kind}>{''.join(cells)}</tr>")
    return f"<table id=metrics><tr>{head}</tr>{''.join(body)}</table>"


def difference_table(rows: list[ProbeRow]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ["codes", *(f"Δ {TITLES[m]}" for m in PAIRED)])
    body = [f"<tr class={row.kind}><td class=name>{html.escape(row.name)}</td>"
            + "".join(f"<td>{_interval(row.difference[m], signed=True)}</td>" for m in PAIRED) + "</tr>"
            for row in rows[1:]]
    return f"<table id=differences><tr>{head}</tr>{''.join(body)}</table>"


def association_table(assoc: dict, title: str, top: int = 20) -> str:
    rows = "".join(f"<tr><td>{p['code']}</td><td class=name>{html.escape(str(p['unit']))}</td><td>{p['count']}</td>"
                   f"<td>{p['occurrences']}</td><td>{p['npmi']:.3f}</td><td>{p['q_value']:.1e}</td></tr>"
                   for p in assoc["top_pairs"][:top])
    return (f"<h3>{title}</h3><p class=note>{assoc['occurrences']} word occurrences; {assoc['pairs_tested']} pairs "
            f"tested; {assoc['codes_with_significant_partner']} of {assoc.get('codes_seen', 0)} codes seen have a "
            f"significant partner ({html.escape(assoc['test'])}, false discovery rate {assoc.get('alpha', 0.01)})."
            "</p><table class=npmi><tr><th>code</th><th>unit</th><th>frames</th><th>occurrences</th><th>NPMI</th>"
            f"<th>q</th></tr>{rows}</table>")


def bpe_table(vocabulary: TokenVocabulary) -> str:
    """The vocabulary's most frequent multi-code tokens: codes, length, duration, count, share, majority phone."""
    v = vocabulary
    merged = ("" if math.isnan(v.within_one_phone) else f", and {v.within_one_phone:.1%} of these tokens lie within "
              f"one phone (chance {v.within_one_phone_chance:.1%})")
    rows = "".join(f"<tr><td class=name>{' '.join(map(str, t['codes']))}</td><td>{t['frames']}</td>"
                   f"<td>{t['milliseconds']:.0f}</td><td>{t['count']}</td><td>{t['share_of_frames']:.2%}</td>"
                   f"<td class=name>{html.escape(str(t['majority_phone']))}</td><td>{t['majority_share']:.0%}</td>"
                   f"<td>{t['within_one_phone']:.0%} <small>({t['within_one_phone_chance']:.0%})</small></td></tr>"
                   for t in v.top_tokens)
    return (f"<h3>{html.escape(v.name)}</h3><p class=note><code>{html.escape(v.path)}</code> "
            f"({html.escape(v.model_type)}, {v.vocab_size} tokens over K = {v.codebook_size} codes): {v.tokens} "
            f"tokens for {v.frames} frames ({v.codes_per_token:.2f} codes per token); {v.multi_code_frames:.1%} of "
            f"the frames lie in multi-code tokens{merged}.</p><table class=bpe-tokens><tr><th>codes</th>"
            "<th>frames</th><th>ms</th><th>count</th><th>share of frames</th><th>majority phone</th><th>its share</th>"
            f"<th>within one phone (chance)</th></tr>{rows}</table>")


def bpe_section(result: ProbeResult) -> list[str]:
    """What the `--audio-bpe` rows are, and each vocabulary's table (nothing without audio BPE)."""
    if not result.audio_bpe:
        return []
    intro = ("<h2 id=audio-bpe>Acoustic BPE tokens</h2><p class=note>Each audio-BPE vocabulary encodes the codes of "
             f"{html.escape(result.reference)}; every frame is labelled with the token covering it, so the "
             "“frame-level” rows above score the tokens on the same frames and phone labels as the codes (their null: "
             "the per-frame token labels circularly shifted). Below, each vocabulary's most frequent multi-code tokens "
             "over the probed utterances: frames (ms at the codec's frame rate), occurrences, share of all frames, the "
             "most frequent phone over their frames (silence a label) and its share, and the share of their "
             "occurrences whose frames all carry one phone, with its chance (a span of the same length at a random "
             "place in the same utterance).</p>")
    return [intro, *(bpe_table(vocabulary) for vocabulary in result.audio_bpe)]


def _examples(result: ProbeResult, count: int) -> list[str]:
    if not result.coded:
        return []
    coded = result.coded[0]
    codec = None
    if coded.path is not None:
        from wavtokenizer_hf.codec import Codec

        codec = Codec.from_pretrained(coded.path)
    parts = []
    for utterance, codes in list(zip(result.probe_set, coded.codes))[:count]:
        parts.append(f"<figure><img alt='timeline {html.escape(utterance.id)}' "
                     f"src='{example_plot(utterance, codes, coded.frame_rate)}'></figure>")
        parts.append(f"<p>original <audio controls src='{_audio_uri(utterance.waveform, utterance.rate)}'></audio>")
        if codec is not None and len(codes) >= 2:
            reconstruction = codec.decode(torch.from_numpy(codes)[None]).reshape(-1)
            parts.append(f" reconstruction ({html.escape(coded.name)}) <audio controls "
                         f"src='{_audio_uri(reconstruction, codec.sampling_rate)}'></audio>")
        parts.append("</p>")
    return parts


def write_report(result: ProbeResult, path: str | Path, examples: int = 2) -> Path:
    """Write the HTML report of `run_probes`'s result."""
    rows = result.rows
    main = rows[0]
    silence = (" (silence frames dropped)" if result.drop_silence
               else " (silence, one label for every pause, is a label)")
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>Codec token alignment report</title>"
             f"<style>{STYLE}</style></head><body>",
             "<h1>How codec tokens align with phones and words</h1>",
             f"<p>{result.utterances} utterances ({result.seconds:.0f} s) from <code>{html.escape(result.source)}"
             f"</code>, split <code>{html.escape(result.split)}</code>. Frame labels: the phone/word covering each "
             f"frame's centre{silence}. Baselines use the first codec's K and frames; "
             f"{html.escape(result.baseline_fit)}.</p>",
             f"<p class=note id=intervals>{html.escape(result.intervals)}</p>",
             "<h2>Metrics</h2>", metric_table(rows),
             "<p class=note>PNMI = I(phone; code) / H(phone); mapping accuracy = majority phone of each code learned on "
             "half of the utterances, scored on the other half; majority class = always the learning half's most "
             f"frequent phone. Null: the same codes circularly shifted within each utterance ({result.null_draws} "
             "draws), which keeps their usage and runs; “− null” columns are the chance-adjusted values. Phone "
             "purity grows with K; compare rows with equal K.</p>",
             f"<h2>Paired differences to {html.escape(main.name)}</h2>", difference_table(rows),
             "<p class=note>Each row minus the reference, on the same utterances and the same bootstrap resamples.</p>"]
    if result.notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>")
    steps = steps_plot(rows)
    parts += ["<h2>Plots</h2>", f"<figure><img alt='code usage' src='{usage_plot(rows)}'></figure>",
              f"<figure><img alt='phone by code heat map' src='{heatmap_plot(main)}'></figure>"]
    if steps:
        parts.append(f"<figure><img alt='metrics vs training step' src='{steps}'></figure>")
    parts += bpe_section(result)
    parts.append("<h2>Codes and words (NPMI)</h2>")
    if main.word_association is not None:
        parts.append(association_table(main.word_association, f"{html.escape(main.name)}: code / word"))
    if main.token_association is not None:
        parts.append(association_table(main.token_association, f"{html.escape(main.name)}: code / text token"))
    if result.lm_embeddings is not None:
        e = result.lm_embeddings
        nearest = "".join(f"<tr><td>{code}</td><td class=name>{html.escape(' '.join(tokens))}</td></tr>"
                          for code, tokens in list(e["nearest_text_tokens"].items())[:20])
        parts.append(f"<h2>LM embeddings</h2><p>LM <code>{html.escape(e['lm'])}</code>: retrieval of a code's "
                     f"significant word among its {e['retrieval_k']} nearest text tokens: {e['retrieval_at_k']:.1%} of "
                     f"{e['retrieval_codes']} codes (chance {e['retrieval_chance']:.1%}); linear CKA between frame code "
                     f"embeddings and their word's text-token embeddings {e['cka']:.3f} (shuffled pairing "
                     f"{e['cka_shuffled']:.3f}, {e['cka_frames']} frames).</p>"
                     f"<table id=nearest><tr><th>code</th><th>nearest text tokens</th></tr>{nearest}</table>")
    parts.append("<h2>Examples</h2>")
    parts += _examples(result, examples)
    parts.append("</body></html>")
    path = Path(path)
    with atomic_path(path, overwrite=True) as tmp:
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
    return path
