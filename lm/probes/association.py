"""Code <-> word and code <-> text-token association, counted over frames inside word spans.

  PMI(z, w)  = log p(z, w) / (p(z) p(w))          NPMI(z, w) = PMI(z, w) / -log p(z, w)   in [-1, 1]
A pair is reported only with at least `min_count` co-occurrences. A code has a *significant partner* when some
word co-occurs with it more often than independence allows: one-sided binomial test of n(z, w) against
n(z) * p(w), Bonferroni-corrected over all pairs tested, at `alpha`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.stats import binom


def association(pairs: list[tuple[int, str]], min_count: int = 5, alpha: float = 0.01, top: int = 25) -> dict:
    """`pairs`: one (code, unit) per frame and unit (a frame inside a word with 3 text tokens gives 3 pairs)."""
    if not pairs:
        return {"pairs_tested": 0, "codes_with_significant_partner": 0, "significant_share": 0.0, "top_pairs": [],
                "partners": {}}
    joint = Counter(pairs)
    code_counts = Counter(z for z, _ in pairs)
    unit_counts = Counter(w for _, w in pairs)
    total = len(pairs)
    tested = [(z, w, n) for (z, w), n in joint.items() if n >= min_count]
    rows = []
    for z, w, n in tested:
        p_zw, p_z, p_w = n / total, code_counts[z] / total, unit_counts[w] / total
        pmi = np.log(p_zw / (p_z * p_w))
        npmi = pmi / -np.log(p_zw) if p_zw < 1 else 1.0
        p_value = float(binom.sf(n - 1, code_counts[z], p_w))
        rows.append({"code": int(z), "unit": w, "count": int(n), "npmi": float(npmi), "p_value": p_value})
    threshold = alpha / max(len(rows), 1)
    partners: dict[int, dict] = {}
    for row in rows:
        if row["p_value"] < threshold and row["npmi"] > 0:
            best = partners.get(row["code"])
            if best is None or row["npmi"] > best["npmi"]:
                partners[row["code"]] = row
    used_codes = len(code_counts)
    rows.sort(key=lambda r: (-r["npmi"], -r["count"]))
    return {"pairs_tested": len(rows), "codes_seen": used_codes, "codes_with_significant_partner": len(partners),
            "significant_share": len(partners) / used_codes if used_codes else 0.0,
            "mean_top_npmi": float(np.mean([p["npmi"] for p in partners.values()])) if partners else 0.0,
            "top_pairs": rows[:top], "partners": partners}
