"""Paired differences between codecs scored on the same utterances, with bootstrap intervals over utterances: on a
few dozen utterances a recogniser's rates move by points from one snapshot to the next, and the interval says
whether a difference is larger than that."""

from __future__ import annotations

import math

import numpy as np

from ..errors import WavTokenizerError

# (summary key, label, how a difference is printed, per-utterance errors and length for a pooled rate, or the
# per-utterance value for a mean)
PAIRED_ROWS = [
    ("wer_capped", "WER, capped (points)", "{:+.1f}", ("errors", "words")),
    ("cer_capped", "CER, capped (points)", "{:+.1f}", ("char_errors", "chars")),
    ("stoi", "STOI", "{:+.3f}", "stoi"),
    ("vuv_f1", "voiced/unvoiced F1", "{:+.3f}", "vuv_f1"),
    ("f0_gross_error", "F0 gross errors (points)", "{:+.1f}", "f0_gross_error"),
    ("phase_advance_error", "phase advance error, radians", "{:+.3f}", "phase_advance_error"),
    ("mel_distance", "mel L1 distance", "{:+.3f}", "mel_distance"),
]
PERCENT_POINTS = {"wer_capped", "cer_capped", "f0_gross_error"}


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _speech_rows(results: dict, name: str) -> dict[str, dict]:
    return {row["id"]: row for row in results["codecs"][name]["per_utterance"] if row["kind"] == "speech"}


def paired_differences(results: dict, reference: str, rounds: int = 2000, seed: int = 0) -> dict:
    """For every other codec: its value minus the reference's on each metric of `PAIRED_ROWS`, with a 95% interval
    from resampling utterances (the same resamples for every codec and metric). Rates are pooled as in the summary
    (each utterance's errors capped at its length); means use the utterances where both codecs have a value."""
    if reference not in results["codecs"]:
        raise WavTokenizerError(f"no codec named '{reference}' in these results ({', '.join(results['codecs'])})")
    base = _speech_rows(results, reference)
    ids = sorted(base)
    if not ids:
        return {}
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(rounds, len(ids)))
    out = {}
    for name in results["codecs"]:
        if name == reference:
            continue
        other = _speech_rows(results, name)
        if sorted(other) != ids:
            raise WavTokenizerError(f"'{name}' and '{reference}' were scored on different utterances")
        out[name] = {}
        for key, _, _, source in PAIRED_ROWS:
            if isinstance(source, tuple):
                errors, total = source
                # utterances without a transcript count for neither codec, as in the summary's pooled rates
                read = [total in base[i] and total in other[i] for i in ids]
                length = np.array([base[i][total] if ok else 0 for i, ok in zip(ids, read)], dtype=float)
                capped = [np.array([min(rows[i][errors], rows[i][total]) if ok else 0 for i, ok in zip(ids, read)],
                                   dtype=float) for rows in (base, other)]
                delta = capped[1] - capped[0]
                value = delta.sum() / length.sum() if length.sum() else None
                sums = length[draws].sum(axis=1)
                boot = delta[draws].sum(axis=1) / np.where(sums > 0, sums, np.nan)
            else:
                delta = np.array([other[i][source] - base[i][source] if _present(other[i].get(source))
                                  and _present(base[i].get(source)) else np.nan for i in ids])
                if np.isnan(delta).all():
                    continue
                value = float(np.nanmean(delta))
                kept = ~np.isnan(delta)
                counts = kept[draws].sum(axis=1)
                boot = np.where(kept, delta, 0.0)[draws].sum(axis=1) / np.where(counts > 0, counts, np.nan)
            if value is None:
                continue
            low, high = np.nanpercentile(boot, [2.5, 97.5])
            out[name][key] = {"difference": float(value), "low": float(low), "high": float(high)}
    return out


def paired_table(results: dict, reference: str, rounds: int = 2000) -> str:
    """Markdown: each codec minus the reference, with its 95% bootstrap interval."""
    differences = paired_differences(results, reference, rounds)
    names = list(differences)
    if not names:
        return ""
    lines = [f"Paired differences to `{reference}` on the same utterances (95% bootstrap intervals over "
             f"utterances, {rounds} resamples; an interval that excludes 0 is a difference larger than the test "
             "set's sampling noise):", "", "| metric | " + " | ".join(names) + " |",
             "| --- |" + " --- |" * len(names)]
    for key, label, fmt, _ in PAIRED_ROWS:
        cells = []
        for name in names:
            entry = differences[name].get(key)
            if entry is None:
                cells.append("n/a")
                continue
            scale = 100.0 if key in PERCENT_POINTS else 1.0
            d, lo, hi = (entry[k] * scale for k in ("difference", "low", "high"))
            cells.append(f"{fmt.format(d)} [{fmt.format(lo)}, {fmt.format(hi)}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
