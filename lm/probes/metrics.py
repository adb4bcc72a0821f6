"""Clustering metrics of codes against frame labels (HuBERT-style), with bootstrap confidence intervals.

With n(y, z) the count of frames labelled y that carry code z and N the number of frames:
  phone purity  = sum_z max_y n(y, z) / N          code purity = sum_y max_z n(y, z) / N
  PNMI          = I(Y; Z) / H(Y)  (= homogeneity)   completeness = I(Y; Z) / H(Z)
  V-measure     = 2 PNMI C / (PNMI + C)
Held-out mapping accuracy: the majority label of each code learned on one half of the utterances and scored on the
other half (both directions averaged); codes unseen in the learning half predict its most frequent label.
Confidence intervals resample utterances with replacement (frames of one utterance are not independent); see
`bootstrap` for how its shift is removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from wavtokenizer_hf.extras import require

sparse = require("scipy.sparse", "the alignment probes")

CONTINGENCY_METRICS = ("phone_purity", "code_purity", "pnmi", "completeness", "v_measure")


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def contingency_metrics(counts: np.ndarray) -> dict[str, float]:
    """Metrics of a dense label x code count matrix."""
    total = counts.sum()
    if total <= 0:
        return {name: float("nan") for name in CONTINGENCY_METRICS}
    joint = counts / total
    p_y, p_z = joint.sum(1), joint.sum(0)
    h_y, h_z, h_yz = _entropy(p_y), _entropy(p_z), _entropy(joint.ravel())
    mutual = h_y + h_z - h_yz
    pnmi = mutual / h_y if h_y > 0 else 1.0
    completeness = mutual / h_z if h_z > 0 else 1.0
    v = 2 * pnmi * completeness / (pnmi + completeness) if pnmi + completeness > 0 else 0.0
    return {"phone_purity": float(counts.max(0).sum() / total), "code_purity": float(counts.max(1).sum() / total),
            "pnmi": float(pnmi), "completeness": float(completeness), "v_measure": float(v)}


def codebook_metrics(codes: np.ndarray, codebook_size: int) -> dict[str, float]:
    """Share of the codebook used at least once, entropy (bits) and perplexity of the code distribution."""
    counts = np.bincount(codes, minlength=codebook_size)
    entropy = _entropy(counts / counts.sum()) / np.log(2)
    return {"codebook_used": float((counts > 0).mean()), "code_entropy_bits": float(entropy),
            "code_perplexity": float(2**entropy)}


def utterance_halves(utterance_ids: list[str]) -> np.ndarray:
    """True for utterances in half A (a hash of the id decides)."""
    return np.array([int(hashlib.sha1(f"half:{u}".encode()).hexdigest()[:8], 16) % 2 == 0 for u in utterance_ids])


@dataclass
class FrameTable:
    """Frames of many utterances: integer labels and codes, and which utterance each frame belongs to."""

    labels: np.ndarray  # int [F]
    codes: np.ndarray  # int [F]
    utterance: np.ndarray  # int [F], index into utterance_ids
    label_names: list[str]
    codebook_size: int
    utterance_ids: list[str]

    def per_utterance_counts(self) -> sparse.csr_matrix:
        """[utterances, labels * K] counts, so that any weighting of utterances is one sparse product."""
        cells = self.labels.astype(np.int64) * self.codebook_size + self.codes
        shape = (len(self.utterance_ids), len(self.label_names) * self.codebook_size)
        return sparse.csr_matrix((np.ones(len(cells)), (self.utterance, cells)), shape=shape)

    def counts(self, weights: np.ndarray | None = None, table: sparse.csr_matrix | None = None) -> np.ndarray:
        table = self.per_utterance_counts() if table is None else table
        w = np.ones(table.shape[0]) if weights is None else weights
        return np.asarray(table.T @ w).reshape(len(self.label_names), self.codebook_size)


def mapping_accuracy(table: FrameTable, weights: np.ndarray | None = None, per_utt=None) -> float:
    """Held-out majority-mapping accuracy (both halves as learning set in turn, frame-weighted average)."""
    halves = utterance_halves(table.utterance_ids)
    per_utt = table.per_utterance_counts() if per_utt is None else per_utt
    w = np.ones(len(halves)) if weights is None else weights
    correct = frames = 0.0
    for learn in (halves, ~halves):
        learned = table.counts(w * learn, per_utt)
        if learned.sum() == 0:
            continue
        mapping = learned.argmax(0)
        unseen = learned.sum(0) == 0
        mapping[unseen] = learned.sum(1).argmax()
        scored = table.counts(w * ~learn, per_utt)
        correct += scored[mapping, np.arange(table.codebook_size)].sum()
        frames += scored.sum()
    return float(correct / frames) if frames else float("nan")


def all_metrics(table: FrameTable, weights: np.ndarray | None = None, per_utt=None) -> dict[str, float]:
    counts = table.counts(weights, per_utt)
    values = contingency_metrics(counts)
    values["mapping_accuracy"] = mapping_accuracy(table, weights, per_utt)
    return values


def bootstrap(table: FrameTable, rounds: int = 200, seed: int = 0, level: float = 0.95) -> dict[str, dict]:
    """Each metric's value on all data and its percentile interval over `rounds` resamplings of utterances."""
    per_utt = table.per_utterance_counts()
    point = all_metrics(table, per_utt=per_utt)
    rng = np.random.default_rng(seed)
    n = len(table.utterance_ids)
    samples = {name: [] for name in point}
    for _ in range(rounds):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        for name, value in all_metrics(table, weights, per_utt).items():
            samples[name].append(value)
    tail = (1 - level) / 2 * 100
    # Resampling utterances with replacement shifts these statistics (plug-in information measures come out larger
    # with duplicated frames; held-out accuracy smaller, with fewer distinct utterances to learn from). The interval
    # keeps the bootstrap distribution's spread and removes that shift: [v - (mean - q_low), v + (q_high - mean)].
    out = {}
    for name, value in point.items():
        values = np.asarray(samples[name], dtype=float)
        low, high = np.nanpercentile(values, [tail, 100 - tail])
        centre = float(np.nanmean(values))
        out[name] = {"value": value, "low": float(np.clip(value - (centre - low), 0, 1)),
                     "high": float(np.clip(value + (high - centre), 0, 1)),
                     "bootstrap_shift": centre - value}
    return out
