"""Code <-> word and code <-> text-token association, tested per word occurrence.

A unit occurrence is one spoken word (its units: the word, or its text tokens) with the codes of the frames inside it.
  NPMI(z, w) = PMI(z, w) / -log p(z, w),  PMI = log p(z, w) / (p(z) p(w)),  counted over frames   (descriptive)
A code has a *significant partner* w when the occurrences of w contain z more often than the other occurrences do:
one-sided Fisher's exact test on the 2 x 2 table of occurrences (contains w or not) x (contains z or not). Codes
repeat over neighbouring frames, so frames are not independent draws; occurrences of a word are much closer to
independent, which keeps the test valid. Every pair whose margins allow a test (unit and code each in at least
`min_occurrences` occurrences) is in the family, and the p-values are corrected over all of them with
Benjamini-Hochberg (false discovery rate `alpha`).

Codes that depend on the speaker (or the recording) but not on the words still pass that test wherever a word is
spoken more often by one speaker. So occurrences carry a stratum, their utterance, and the test is stratified: a
word's occurrences are compared only with the other words of the same utterances (the exact conditional test, the
count of occurrences holding both summed over utterances against the convolution of each utterance's
hypergeometric law). Within one utterance the speaker is fixed, so a speaker-only code finds no partner.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from wavtokenizer_hf.extras import require

from .labels import Interval, interval_index_at_centres

sparse = require("scipy.sparse", "alignment probing")
stats = require("scipy.stats", "alignment probing")

TEST = ("one-sided exact test per word occurrence, stratified by utterance (Fisher's where there is one stratum), "
        "Benjamini-Hochberg over every tested pair")


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a spoken unit: its units (a word, or a word's text tokens) and the codes of its frames."""

    units: tuple[str, ...]
    codes: np.ndarray
    stratum: str = ""  # the utterance: occurrences are compared within their stratum


def unit_occurrences(intervals: list[Interval], codes: np.ndarray, frame_rate: float,
                     units: Callable[[str], Sequence[str]] | None = None, stratum: str = "") -> list[Occurrence]:
    """One `Occurrence` per interval covering at least one frame centre; `units(label)` gives its units (default:
    the label itself); `stratum` names the utterance."""
    index = interval_index_at_centres(intervals, len(codes), frame_rate)
    out = []
    for i, interval in enumerate(intervals):
        frames = np.flatnonzero(index == i)
        names = tuple(dict.fromkeys(units(interval.label))) if units else (interval.label,)
        if len(frames) and names:
            out.append(Occurrence(names, np.asarray(codes)[frames].astype(np.int64), stratum))
    return out


def benjamini_hochberg(p_values: np.ndarray, family: int | None = None) -> np.ndarray:
    """BH-adjusted p-values (q-values) of `p_values` within a family of `family` tests; the tests not listed have
    p = 1 (so they change the adjustment only through the family size)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p) if family is None else family
    if m < len(p):
        raise ValueError(f"family ({m}) smaller than the number of p-values ({len(p)})")
    if len(p) == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, len(p) + 1)
    q = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    out = np.empty_like(q)
    out[order] = q
    return out


def _stratified_p_values(occurrences, strata: list[str], has_unit, has_code, u: np.ndarray, z: np.ndarray,
                         a: np.ndarray) -> np.ndarray:
    """P(A >= a) per (unit, code) pair, A the occurrences holding both summed over strata, each stratum's count
    hypergeometric given its margins (occurrences, those of the unit, those holding the code)."""
    stratum_index = {name: i for i, name in enumerate(strata)}
    rows = np.array([stratum_index[o.stratum] for o in occurrences])
    member = sparse.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), rows)), shape=(len(rows), len(strata)))
    size = np.asarray(member.sum(0)).ravel().astype(np.int64)
    unit_in = (has_unit.T @ member).tocsr()  # unit x stratum: its occurrences there
    code_in = (has_code.T @ member).tocsr()  # code x stratum
    out = np.empty(len(a))
    for i, (unit, code, seen) in enumerate(zip(u, z, a)):
        row = unit_in.getrow(unit)
        where, n = row.indices, row.data.astype(np.int64)
        k = np.asarray(code_in[code, where].todense()).ravel().astype(np.int64)
        law = np.ones(1)
        for total, drawn, holding in zip(size[where], n, k):
            if holding == 0:
                continue  # this stratum adds 0 for certain
            support = np.arange(0, min(drawn, holding) + 1)
            law = np.convolve(law, stats.hypergeom.pmf(support, total, holding, drawn))
        out[i] = float(law[int(seen):].sum()) if seen < len(law) else 0.0
    return np.minimum(out, 1.0)


def _empty() -> dict:
    return {"test": TEST, "occurrences": 0, "pairs_tested": 0, "codes_seen": 0, "codes_with_significant_partner": 0,
            "significant_share": 0.0, "mean_top_npmi": 0.0, "top_pairs": [], "partners": {}}


def association(occurrences: Sequence[Occurrence] | Sequence[tuple[int, str]], min_count: int = 5,
                alpha: float = 0.01, top: int = 25, min_occurrences: int = 2) -> dict:
    """NPMI of code/unit pairs and the codes with a significant partner (see the module docstring).

    `top_pairs`: the tested pairs seen in at least `min_count` frames, by NPMI. Deprecated input: a list of
    (code, unit) pairs, one per frame, each then counted as its own occurrence (frames taken as independent)."""
    if occurrences and not isinstance(occurrences[0], Occurrence):
        warnings.warn("association() on (code, unit) frame pairs treats frames as independent occurrences and "
                      "overstates significance when codes repeat; pass lm.probes.association.Occurrence objects "
                      "(unit_occurrences)", DeprecationWarning, stacklevel=2)
        occurrences = [Occurrence((unit,), np.array([code], dtype=np.int64)) for code, unit in occurrences]
    occurrences = [o for o in occurrences if len(o.codes) and o.units]
    if not occurrences:
        return _empty()
    unit_names = sorted({u for o in occurrences for u in o.units})
    unit_index = {u: i for i, u in enumerate(unit_names)}
    n_occ, n_codes = len(occurrences), int(max(o.codes.max() for o in occurrences)) + 1
    unit_rows = np.repeat(np.arange(n_occ), [len(o.units) for o in occurrences])
    unit_cols = np.array([unit_index[u] for o in occurrences for u in o.units])
    has_unit = sparse.csr_matrix((np.ones(len(unit_rows)), (unit_rows, unit_cols)), shape=(n_occ, len(unit_names)))
    code_rows = np.repeat(np.arange(n_occ), [len(o.codes) for o in occurrences])
    frames = sparse.csr_matrix((np.ones(len(code_rows)), (code_rows, np.concatenate([o.codes for o in occurrences]))),
                               shape=(n_occ, n_codes))  # duplicates summed: frames of each code per occurrence
    has_code = frames.copy()
    has_code.data[:] = 1.0
    joint_frames = (has_unit.T @ frames).tocoo()  # unit x code frame counts (a frame counts once per unit)
    joint_occ = (has_unit.T @ has_code).tocsr()  # unit x code: occurrences containing both
    unit_occ = np.asarray(has_unit.sum(0)).ravel()
    code_occ = np.asarray(has_code.sum(0)).ravel()
    total = joint_frames.data.sum()
    unit_frames = np.asarray(has_unit.T @ np.asarray(frames.sum(1)).ravel()).ravel()
    code_frames = np.asarray(frames.T @ np.asarray(has_unit.sum(1)).ravel()).ravel()
    testable_units, testable_codes = unit_occ >= min_occurrences, code_occ >= min_occurrences
    family = int(testable_units.sum()) * int(testable_codes.sum())
    u, z, n = joint_frames.row, joint_frames.col, joint_frames.data
    keep = testable_units[u] & testable_codes[z]
    u, z, n = u[keep], z[keep], n[keep]
    a = np.asarray(joint_occ[u, z]).ravel()
    strata = sorted({o.stratum for o in occurrences})
    if len(strata) == 1:
        p_values = stats.hypergeom.sf(a - 1, n_occ, code_occ[z], unit_occ[u])  # Fisher's exact test, "greater"
    else:
        p_values = _stratified_p_values(occurrences, strata, has_unit, has_code, u, z, a)
    q_values = benjamini_hochberg(p_values, family)
    p_zw = n / total
    pmi = np.log(p_zw / ((code_frames[z] / total) * (unit_frames[u] / total)))
    npmi = np.where(p_zw < 1, pmi / -np.log(np.minimum(p_zw, 1 - 1e-12)), 1.0)
    rows = [{"code": int(z[i]), "unit": unit_names[u[i]], "count": int(n[i]), "occurrences": int(a[i]),
             "npmi": float(npmi[i]), "p_value": float(p_values[i]), "q_value": float(q_values[i])}
            for i in range(len(n))]
    partners: dict[int, dict] = {}
    for row in rows:
        if row["q_value"] < alpha and row["npmi"] > 0:
            best = partners.get(row["code"])
            if best is None or row["npmi"] > best["npmi"]:
                partners[row["code"]] = row
    codes_seen = int((code_occ > 0).sum())
    shown = sorted((r for r in rows if r["count"] >= min_count), key=lambda r: (-r["npmi"], -r["count"]))
    return {"test": TEST, "occurrences": n_occ, "pairs_tested": family, "codes_seen": codes_seen,
            "codes_with_significant_partner": len(partners),
            "significant_share": len(partners) / codes_seen if codes_seen else 0.0,
            "mean_top_npmi": float(np.mean([p["npmi"] for p in partners.values()])) if partners else 0.0,
            "alpha": alpha, "top_pairs": shown[:top], "partners": partners}
