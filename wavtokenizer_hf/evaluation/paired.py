"""Paired differences between codecs scored on the same utterances, with bootstrap intervals: on a few dozen
utterances a recogniser's rates move by points from one snapshot to the next, and the interval says whether a
difference is larger than that.

What is resampled: speakers first, then utterances within each drawn speaker, where the test set has several
utterances per speaker (utterances of one voice are not independent: an utterance-only bootstrap is too narrow when
one voice dominates); utterances alone where every utterance has its own speaker. For recognised rates each draw
also picks one of the recogniser's readings of each utterance (unperturbed or perturbed, `runner.recogniser_spread`),
centred on the unperturbed one, so the interval covers the recogniser's own jitter too and stays centred on the
difference it reports."""

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
    ("speaker_similarity", "speaker similarity", "{:+.3f}", "speaker_similarity"),
    ("vuv_f1", "voiced/unvoiced F1", "{:+.3f}", "vuv_f1"),
    ("f0_gross_error", "F0 gross errors (points)", "{:+.1f}", "f0_gross_error"),
    ("phase_advance_error", "phase advance error, radians", "{:+.3f}", "phase_advance_error"),
    ("mel_distance", "mel L1 distance", "{:+.3f}", "mel_distance"),
    ("pesq_wb", "PESQ (wideband)", "{:+.2f}", "pesq_wb"),
    ("mos", "DistillMOS", "{:+.2f}", "mos"),
]
PERCENT_POINTS = {"wer_capped", "cer_capped", "f0_gross_error"}


def format_difference(key: str, entry: dict) -> str:
    """`difference [low, high]` of one `PAIRED_ROWS` metric, in points for rates. A bound that rounds to zero at the
    row's precision gets more decimals, so that which side of zero it lies on (whether the interval excludes 0)
    stays readable: `[-8.5, +0.04]`, not `[-8.5, +0.0]`."""
    fmt = next(f for k, _, f, _ in PAIRED_ROWS if k == key)
    scale = 100.0 if key in PERCENT_POINTS else 1.0
    d, low, high = (entry[k] * scale for k in ("difference", "low", "high"))
    return f"{fmt.format(d)} [{_bound(low, fmt)}, {_bound(high, fmt)}]"


def _bound(value: float, fmt: str) -> str:
    text, digits = fmt.format(value), int(fmt.split(".")[1][0])
    while value != 0 and float(text) == 0 and digits < 6:
        digits += 1
        text = f"{value:+.{digits}f}"
    return text


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _speech_rows(results: dict, name: str) -> dict[str, dict]:
    return {row["id"]: row for row in results["codecs"][name]["per_utterance"] if row["kind"] == "speech"}


def _group_of(results: dict, row: dict) -> str:
    groups = results.get("groups", {}).get(row["id"], {})
    return groups.get("speaker") or groups.get("source") or row.get("speaker") or row.get("source") or row["id"]


def resampling_unit(results: dict, reference: str) -> str:
    """"speakers, then utterances within them", or "utterances" where no speaker has two utterances."""
    rows = _speech_rows(results, reference).values()
    groups = [_group_of(results, r) for r in rows]
    return "speakers, then utterances within them" if len(set(groups)) < len(groups) else "utterances"


def bootstrap_weights(groups: list[str], rounds: int, rng: np.random.Generator) -> np.ndarray:
    """(rounds, n) how often each utterance is drawn: speakers with replacement, then as many utterances as the
    speaker has, with replacement, from that speaker's. With one utterance per speaker this is the plain bootstrap
    over utterances."""
    n = len(groups)
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    pools = [np.array(m) for m in members.values()]
    weights = np.zeros((rounds, n))
    for r in range(rounds):
        for g in rng.integers(0, len(pools), size=len(pools)):
            pool = pools[g]
            np.add.at(weights[r], pool[rng.integers(0, len(pool), size=len(pool))], 1.0)
    return weights


def _readings(rows: dict[str, dict], ids: list[str], errors: str, length: np.ndarray, rounds: int,
              rng: np.random.Generator) -> np.ndarray:
    """(rounds, n) each utterance's capped errors in a reading drawn per round: the unperturbed reading plus the
    deviation of one of its readings (unperturbed or perturbed) from their mean, so that the draws are centred on
    the unperturbed reading the summary reports and spread as the readings do."""
    table = []
    for i in ids:
        row = rows[i]
        table.append([row[errors]] + [v[errors] for v in row.get("variants") or []])
    width = min(len(t) for t in table)
    options = np.minimum(np.array([t[:width] for t in table], dtype=float), length[:, None])  # (n, readings)
    centred = options[:, :1] + options - options.mean(axis=1, keepdims=True)
    pick = rng.integers(0, width, size=(rounds, len(ids)))
    return centred[np.arange(len(ids))[None, :], pick]


def paired_differences(results: dict, reference: str, rounds: int = 2000, seed: int = 0) -> dict:
    """For every other codec: its value minus the reference's on each metric of `PAIRED_ROWS`, with a 95% interval
    from the bootstrap of the module docstring (the same draws of speakers and utterances for every codec and
    metric). Rates are pooled as in the summary (each utterance's errors capped at its length); means use the
    utterances where both codecs have a value."""
    if reference not in results["codecs"]:
        raise WavTokenizerError(f"no codec named '{reference}' in these results ({', '.join(results['codecs'])})")
    base = _speech_rows(results, reference)
    ids = sorted(base)
    if not ids:
        return {}
    rng = np.random.default_rng(seed)
    weights = bootstrap_weights([_group_of(results, base[i]) for i in ids], rounds, rng)
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
                read = np.array([total in base[i] and total in other[i] for i in ids])
                if not read.any():
                    continue
                length = np.array([base[i][total] if ok else 0 for i, ok in zip(ids, read)], dtype=float)
                cap = lambda e: np.minimum(e, length) * read  # noqa: E731
                delta = cap(np.array([other[i].get(errors, 0) for i in ids], float)) - cap(
                    np.array([base[i].get(errors, 0) for i in ids], float))
                value = delta.sum() / length.sum() if length.sum() else None
                readable = [i for i, ok in zip(ids, read) if ok]
                drawn = np.zeros((rounds, len(ids)))
                for rows, sign in ((other, 1.0), (base, -1.0)):
                    drawn[:, read] += sign * _readings(rows, readable, errors, length[read], rounds, rng)
                sums = (weights * length).sum(axis=1)
                boot = (weights * drawn).sum(axis=1) / np.where(sums > 0, sums, np.nan)
            else:
                delta = np.array([other[i][source] - base[i][source] if _present(other[i].get(source))
                                  and _present(base[i].get(source)) else np.nan for i in ids])
                if np.isnan(delta).all():
                    continue
                value = float(np.nanmean(delta))
                kept = ~np.isnan(delta)
                counts = (weights * kept).sum(axis=1)
                boot = (weights * np.where(kept, delta, 0.0)).sum(axis=1) / np.where(counts > 0, counts, np.nan)
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
    readings = " and the recogniser's readings of each utterance" if any(
        r.get("variants") for r in _speech_rows(results, reference).values()) else ""
    lines = [f"Paired differences to `{reference}` on the same utterances (95% bootstrap intervals, {rounds} "
             f"resamples of {resampling_unit(results, reference)}{readings}; an interval that excludes 0 is a "
             "difference larger than the test set's sampling noise and the recogniser's jitter):", "",
             "| metric | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for key, label, _, _ in PAIRED_ROWS:
        cells = []
        for name in names:
            entry = differences[name].get(key)
            if entry is None:
                cells.append("n/a")
                continue
            cells.append(format_difference(key, entry))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
