"""Unigram and bigram baselines, scored on exactly the targets an LM is scored on.

The bigram uses Witten-Bell interpolation with the unigram, which needs no tuned constant: a context seen with many
different followers gives more weight to the unigram. The unigram is add-half smoothed over the support (the ids
that can be targets), so no held-out token gets probability zero.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .streams import Utterance


def _targets(utterances: Iterable[Utterance]) -> tuple[np.ndarray, np.ndarray]:
    """(previous id, target id) pairs of every scored position after the first token of each utterance."""
    previous, target = [], []
    for u in utterances:
        keep = u.scored[1:]
        previous.append(u.input_ids[:-1][keep])
        target.append(u.input_ids[1:][keep])
    return np.concatenate(previous), np.concatenate(target)


class NgramBaselines:
    """Fit counts on training utterances; `cross_entropy` gives nats per scored token on held-out ones."""

    def __init__(self, support: np.ndarray, vocab_size: int):
        self.support = np.asarray(support, dtype=np.int64)
        self.vocab_size = vocab_size

    def fit(self, utterances: Iterable[Utterance]) -> "NgramBaselines":
        previous, target = _targets(utterances)
        counts = np.bincount(target, minlength=self.vocab_size).astype(np.float64)
        in_support = np.zeros(self.vocab_size, dtype=bool)
        in_support[self.support] = True
        smoothed = np.where(in_support, counts + 0.5, 0.0)
        self.unigram = smoothed / smoothed.sum()
        # bigram counts as a sparse table keyed by previous * V + target
        keys, pair_counts = np.unique(previous * self.vocab_size + target, return_counts=True)
        self.pair_counts = dict(zip(keys.tolist(), pair_counts.tolist()))
        self.context_total = np.bincount(previous, minlength=self.vocab_size).astype(np.float64)
        self.context_types = np.bincount(keys // self.vocab_size, minlength=self.vocab_size).astype(np.float64)
        return self

    def bigram_probability(self, previous: np.ndarray, target: np.ndarray) -> np.ndarray:
        pair = np.array([self.pair_counts.get(k, 0) for k in (previous * self.vocab_size + target).tolist()], dtype=np.float64)
        total, types = self.context_total[previous], self.context_types[previous]
        denominator = np.maximum(total + types, 1.0)
        unseen_context = total == 0
        p = (pair + types * self.unigram[target]) / denominator
        return np.where(unseen_context, self.unigram[target], p)

    def cross_entropy(self, utterances: Iterable[Utterance]) -> dict[str, float]:
        previous, target = _targets(list(utterances))
        unigram = -np.log(np.maximum(self.unigram[target], 1e-300))
        bigram = -np.log(np.maximum(self.bigram_probability(previous, target), 1e-300))
        return {"unigram_nats": float(unigram.sum()), "bigram_nats": float(bigram.sum()), "tokens": int(target.size)}
