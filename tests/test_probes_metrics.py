"""lm.probes.metrics: chance-adjusted metrics, the majority-class baseline, paired differences between rows, and
mapping halves that keep repeats of a sentence together."""

from __future__ import annotations

import numpy as np
import pytest

from lm.probes.metrics import (FrameTable, bootstrap, majority_accuracy, mapping_accuracy, paired_bootstrap,
                               resampling_weights)


def runs(rng: np.random.Generator, values: int, frames: int) -> np.ndarray:
    """A sequence of random values held for 2-6 frames each (as phones and codes are)."""
    out = []
    while len(out) < frames:
        out += [int(rng.integers(values))] * int(rng.integers(2, 7))
    return np.array(out[:frames])


def table(labels: np.ndarray, codes: np.ndarray, utterances: int, k: int, groups=None) -> FrameTable:
    frames = len(labels) // utterances
    names = [f"p{i}" for i in range(labels.max() + 1)]
    return FrameTable(labels, codes, np.repeat(np.arange(utterances), frames), names, k,
                      [f"u{i}" for i in range(utterances)], groups)


def test_unrelated_codes_score_about_zero_once_adjusted_however_many_codes_they_use():
    rng = np.random.default_rng(0)
    labels = np.concatenate([runs(rng, 8, 100) for _ in range(40)])
    raw, adjusted = {}, {}
    for k in (16, 1024):
        codes = np.concatenate([runs(rng, k, 100) for _ in range(40)])  # unrelated to the labels, with runs
        metrics = bootstrap(table(labels, codes, 40, k), rounds=3)
        raw[k], adjusted[k] = metrics["pnmi"]["value"], metrics["pnmi_adjusted"]["value"]
        assert metrics["mapping_accuracy_adjusted"]["value"] == pytest.approx(0.0, abs=0.03)
    assert raw[1024] > raw[16] + 0.2  # plug-in PNMI grows with the codes used...
    # ...and so does its usage-matched null
    assert adjusted[16] == pytest.approx(0.0, abs=0.02) and adjusted[1024] == pytest.approx(0.0, abs=0.03)
    informative = bootstrap(table(labels, labels * 3 + rng.integers(0, 3, labels.size), 40, 64), rounds=3)
    assert informative["pnmi_adjusted"]["value"] > 0.5


def test_majority_baseline_is_the_learning_halfs_most_frequent_label_on_held_out_frames():
    labels = np.tile([0] * 7 + [1] * 3, 20)  # every utterance: 70% label 0
    codes = np.random.default_rng(1).integers(0, 50, labels.size)
    t = table(labels, codes, 20, 50)
    assert majority_accuracy(t) == pytest.approx(0.7)
    assert bootstrap(t, rounds=3)["majority_accuracy"]["value"] == pytest.approx(0.7)
    assert mapping_accuracy(t) < 0.7  # codes unrelated to the labels: the mapping overfits below the majority class


def test_paired_differences_use_the_same_resamples_for_every_row():
    rng = np.random.default_rng(2)
    labels = np.concatenate([runs(rng, 6, 80) for _ in range(30)])
    clean = np.repeat(rng.uniform(0.2, 1.0, 30), 80)  # how well the codes follow the labels varies by utterance
    codes = np.where(rng.random(labels.size) < clean, labels, rng.integers(0, 6, labels.size))
    noisier = np.where(rng.random(labels.size) < 0.1, rng.integers(0, 6, labels.size), codes)
    a, b = table(labels, codes, 30, 6), table(labels, noisier, 30, 6)
    metrics, differences = paired_bootstrap([a, a, b], rounds=40)
    for name, d in differences[1].items():  # a row against itself: exactly zero, with a zero-width interval
        assert (d["value"], d["low"], d["high"]) == (0.0, 0.0, 0.0), name
    d = differences[2]["pnmi_adjusted"]
    assert d["value"] == pytest.approx(metrics[2]["pnmi_adjusted"]["value"] - metrics[0]["pnmi_adjusted"]["value"])
    own_width = metrics[0]["pnmi_adjusted"]["high"] - metrics[0]["pnmi_adjusted"]["low"]
    assert d["high"] < 0 and d["high"] - d["low"] < 0.5 * own_width  # pairing cancels the shared utterance noise


def test_repeats_of_one_sentence_never_sit_in_both_mapping_halves():
    # 100 sentences read twice: labels random, codes unique to (sentence, frame); a mapping learned on one reading
    # and scored on the other would look perfect, though no code generalises to another sentence
    rng = np.random.default_rng(3)
    labels = [rng.integers(0, 4, 20) for _ in range(100)]
    codes = [np.arange(20) + 20 * s for s in range(100)]
    order = rng.permutation(200)  # the two readings of sentence s are utterances 2s and 2s + 1, shuffled
    frames = [(labels[i // 2], codes[i // 2]) for i in order]
    t = FrameTable(np.concatenate([f[0] for f in frames]), np.concatenate([f[1] for f in frames]),
                   np.repeat(np.arange(200), 20), list("abcd"), 2000, [f"utt{i}" for i in order],
                   [f"sentence {i // 2}" for i in order])
    assert mapping_accuracy(t) < 0.35  # chance (about 0.25 + majority effects); a leak scores about 0.6


def test_bootstrap_resamples_the_repeats_of_a_sentence_together():
    groups = ["s0", "s1", "s0", "s2", "s1"]
    t = FrameTable(np.zeros(5, dtype=int), np.zeros(5, dtype=int), np.arange(5), ["a"], 1,
                   [f"u{i}" for i in range(5)], groups)
    weights = resampling_weights(t, rounds=50, seed=0)
    assert (weights[:, 0] == weights[:, 2]).all() and (weights[:, 1] == weights[:, 4]).all()
    assert (weights[:, [0, 1, 3]].sum(1) == 3).all()  # three sentences drawn each round
