"""Clustering metrics of codes against frame labels (HuBERT-style), chance-adjusted, with paired bootstrap intervals.

With n(y, z) the count of frames labelled y that carry code z and N the number of frames:
  phone purity  = sum_z max_y n(y, z) / N          code purity = sum_y max_z n(y, z) / N
  PNMI          = I(Y; Z) / H(Y)  (= homogeneity)   completeness = I(Y; Z) / H(Z)
  V-measure     = 2 PNMI C / (PNMI + C)
Held-out mapping accuracy: the majority label of each code learned on one half of the utterances and scored on the
other half (both directions averaged); codes unseen in the learning half predict its most frequent label. The
majority-class baseline predicts the learning half's most frequent label for every frame. Halves (and bootstrap
resamples) go by a group key, the normalised sentence, so that repeats of one sentence never sit in both halves.

Chance level differs by row (plug-in PNMI of unrelated codes grows with the number of codes used), so PNMI and
mapping accuracy also come with a usage-matched null: the same codes circularly shifted within each utterance (each
utterance keeps its code usage and its runs of repeated codes; only the alignment with the labels is broken), and
`*_adjusted` = value - null.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from wavtokenizer_hf.codebook import codebook_usage
from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.extras import require

sparse = require("scipy.sparse", "alignment probing")

CONTINGENCY_METRICS = ("phone_purity", "code_purity", "pnmi", "completeness", "v_measure")
CHANCE_ADJUSTED = ("pnmi", "mapping_accuracy")  # each gets `<name>_null` and `<name>_adjusted`
# the report's metric columns and the metrics compared between rows (paired differences)
HEADLINE = ("pnmi", "pnmi_adjusted", "mapping_accuracy", "majority_accuracy", "mapping_accuracy_adjusted",
            "phone_purity", "code_purity", "v_measure")
PAIRED = ("pnmi_adjusted", "mapping_accuracy_adjusted", "pnmi", "mapping_accuracy")
INTERVALS = ("{level:.0%} intervals: cluster bootstrap over utterances ({rounds} resamples; repeats of one sentence "
             "are resampled together), the same resamples for every row, so that row differences are paired. Each "
             "interval is the 2.5-97.5 percentile spread of the resampled values, moved onto the full-data estimate "
             "(the resampling shift removed). It measures sampling variation over these utterances, not the "
             "estimator's bias: plug-in PNMI of unrelated codes is well above 0 and grows with the codes used, "
             "which is what the usage-matched null (`*_adjusted`) removes.")


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
    return codebook_usage(codes, codebook_size)


def utterance_halves(keys: Sequence[str]) -> np.ndarray:
    """True for the keys in half A (a hash of the key decides: equal keys, equal halves)."""
    return np.array([int(hashlib.sha1(f"half:{k}".encode()).hexdigest()[:8], 16) % 2 == 0 for k in keys])


@dataclass
class FrameTable:
    """Frames of many utterances: integer labels and codes, and which utterance each frame belongs to.

    `groups` (one key per utterance, e.g. its normalised sentence) keeps repeats together in the mapping halves
    and the bootstrap; without it every utterance is its own group."""

    labels: np.ndarray  # int [F]
    codes: np.ndarray  # int [F]
    utterance: np.ndarray  # int [F], index into utterance_ids
    label_names: list[str]
    codebook_size: int
    utterance_ids: list[str]
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        if not len(self.labels) == len(self.codes) == len(self.utterance):
            raise WavTokenizerError(f"labels, codes and utterance need one entry per frame; got {len(self.labels)}, "
                                    f"{len(self.codes)} and {len(self.utterance)}")
        if self.groups is not None and len(self.groups) != len(self.utterance_ids):
            raise WavTokenizerError(f"groups needs one key per utterance ({len(self.utterance_ids)}), got "
                                    f"{len(self.groups)}")
        if len(self.codes) and (self.codes.min() < 0 or self.codes.max() >= self.codebook_size):
            raise WavTokenizerError(f"codes must lie in [0, {self.codebook_size})")

    @property
    def group_keys(self) -> list[str]:
        return list(self.utterance_ids) if self.groups is None else list(self.groups)

    def with_codes(self, codes: np.ndarray) -> "FrameTable":
        return dataclasses.replace(self, codes=np.asarray(codes))

    def per_utterance_counts(self) -> sparse.csr_matrix:
        """[utterances, labels * K] counts, so that any weighting of utterances is one sparse product."""
        cells = self.labels.astype(np.int64) * self.codebook_size + self.codes
        shape = (len(self.utterance_ids), len(self.label_names) * self.codebook_size)
        return sparse.csr_matrix((np.ones(len(cells)), (self.utterance, cells)), shape=shape)

    def counts(self, weights: np.ndarray | None = None, table: sparse.csr_matrix | None = None) -> np.ndarray:
        table = self.per_utterance_counts() if table is None else table
        w = np.ones(table.shape[0]) if weights is None else weights
        return np.asarray(table.T @ w).reshape(len(self.label_names), self.codebook_size)


def circular_shift(table: FrameTable, rng: np.random.Generator) -> FrameTable:
    """The table with each utterance's codes rotated by a random non-zero offset: the usage-matched null."""
    codes = table.codes.copy()
    order = np.argsort(table.utterance, kind="stable")
    for frames in np.split(order, np.flatnonzero(np.diff(table.utterance[order])) + 1):
        if len(frames) > 1:
            codes[frames] = np.roll(table.codes[frames], int(rng.integers(1, len(frames))))
    return table.with_codes(codes)


def _held_out_accuracy(table: FrameTable, weights: np.ndarray | None, per_utt, use_codes: bool) -> float:
    halves = utterance_halves(table.group_keys)
    per_utt = table.per_utterance_counts() if per_utt is None else per_utt
    w = np.ones(len(halves)) if weights is None else weights
    correct = frames = 0.0
    for learn in (halves, ~halves):
        learned = table.counts(w * learn, per_utt)
        if learned.sum() == 0:
            continue
        majority = learned.sum(1).argmax()
        mapping = learned.argmax(0) if use_codes else np.full(table.codebook_size, majority)
        mapping[learned.sum(0) == 0] = majority  # codes unseen in the learning half
        scored = table.counts(w * ~learn, per_utt)
        correct += scored[mapping, np.arange(table.codebook_size)].sum()
        frames += scored.sum()
    return float(correct / frames) if frames else float("nan")


def mapping_accuracy(table: FrameTable, weights: np.ndarray | None = None, per_utt=None) -> float:
    """Held-out majority-mapping accuracy (both halves as learning set in turn, frame-weighted average)."""
    return _held_out_accuracy(table, weights, per_utt, use_codes=True)


def majority_accuracy(table: FrameTable, weights: np.ndarray | None = None, per_utt=None) -> float:
    """The majority-class baseline of `mapping_accuracy`: the learning half's most frequent label, on the same
    halves and frames."""
    return _held_out_accuracy(table, weights, per_utt, use_codes=False)


def all_metrics(table: FrameTable, weights: np.ndarray | None = None, per_utt=None) -> dict[str, float]:
    """Contingency metrics, mapping accuracy and its majority-class baseline (no null)."""
    per_utt = table.per_utterance_counts() if per_utt is None else per_utt
    values = contingency_metrics(table.counts(weights, per_utt))
    values["mapping_accuracy"] = mapping_accuracy(table, weights, per_utt)
    values["majority_accuracy"] = majority_accuracy(table, weights, per_utt)
    return values


class _Scorer:
    """`all_metrics` plus the usage-matched null, for any weighting of the utterances."""

    def __init__(self, table: FrameTable, null_draws: int, seed: int):
        rng = np.random.default_rng([seed, 7])
        self.tables = [table] + [circular_shift(table, rng) for _ in range(null_draws)]
        self.per_utt = [t.per_utterance_counts() for t in self.tables]
        self.null_draws = null_draws

    def __call__(self, weights: np.ndarray | None) -> dict[str, float]:
        values = all_metrics(self.tables[0], weights, self.per_utt[0])
        if self.null_draws:
            nulls = [all_metrics(t, weights, p) for t, p in zip(self.tables[1:], self.per_utt[1:])]
            for name in CHANCE_ADJUSTED:
                values[f"{name}_null"] = float(np.mean([n[name] for n in nulls]))
                values[f"{name}_adjusted"] = values[name] - values[f"{name}_null"]
        return values


def resampling_weights(table: FrameTable, rounds: int, seed: int = 0) -> np.ndarray:
    """[rounds, utterances] bootstrap weights: groups drawn with replacement, each utterance weighted by how often
    its group was drawn."""
    groups, index = np.unique(np.asarray(table.group_keys, dtype=object).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(groups), (rounds, len(groups)))
    counts = np.stack([np.bincount(d, minlength=len(groups)) for d in draws]) if rounds else np.zeros((0, len(groups)))
    return counts[:, index].astype(float)


def interval(value: float, samples: np.ndarray, level: float = 0.95, bounded: bool = False) -> dict[str, float]:
    """The bootstrap spread moved onto the estimate: [v - (mean - q_low), v + (q_high - mean)].

    Resampling with replacement shifts these statistics (plug-in information measures come out larger with
    duplicated frames; held-out accuracy smaller, with fewer distinct utterances to learn from); the interval keeps
    the resampled values' spread and removes that shift."""
    samples = np.asarray(samples, dtype=float)
    if samples.size == 0 or np.isnan(samples).all():
        return {"value": float(value), "low": float("nan"), "high": float("nan"), "bootstrap_shift": float("nan")}
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    centre = float(np.nanmean(samples))
    low, high = value - (centre - low), value + (high - centre)
    if bounded:
        low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
    return {"value": float(value), "low": float(low), "high": float(high), "bootstrap_shift": centre - float(value)}


def _bounded(name: str) -> bool:
    return not (name.endswith("_adjusted"))


def paired_bootstrap(tables: Sequence[FrameTable], rounds: int = 200, seed: int = 0, level: float = 0.95,
                     null_draws: int = 3) -> tuple[list[dict[str, dict]], list[dict[str, dict]]]:
    """Every table's metrics with intervals, and every table's difference to `tables[0]` (metrics in `PAIRED`),
    all on the same utterance resamples. The tables must cover the same utterances (their frames may differ)."""
    if not tables:
        raise WavTokenizerError("paired_bootstrap needs at least one frame table")
    reference = tables[0]
    for table in tables[1:]:
        if table.utterance_ids != reference.utterance_ids or table.group_keys != reference.group_keys:
            raise WavTokenizerError("paired rows must cover the same utterances, in the same order and groups")
    weights = resampling_weights(reference, rounds, seed)
    points, samples = [], []
    for table in tables:
        scorer = _Scorer(table, null_draws, seed)
        points.append(scorer(None))
        drawn = [scorer(w) for w in weights]
        samples.append({name: np.array([d[name] for d in drawn]) for name in points[-1]})
    metrics = [{name: interval(point[name], sample[name], level, _bounded(name)) for name in point}
               for point, sample in zip(points, samples)]
    differences = [{name: interval(point[name] - points[0][name], sample[name] - samples[0][name], level)
                    for name in PAIRED if name in point}
                   for point, sample in zip(points, samples)]
    return metrics, differences


def bootstrap(table: FrameTable, rounds: int = 200, seed: int = 0, level: float = 0.95,
              null_draws: int = 3) -> dict[str, dict]:
    """Each metric's value on all data and its interval over `rounds` resamplings of utterances (see `interval`)."""
    return paired_bootstrap([table], rounds, seed, level, null_draws)[0][0]
