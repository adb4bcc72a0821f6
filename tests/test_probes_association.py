"""lm.probes.association: the word-significance test counts word occurrences, not frames, and is corrected over
every tested pair."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control, fisher_exact

from lm.probes.association import Occurrence, association, benjamini_hochberg, unit_occurrences
from lm.probes.labels import Interval

RATE = 75.0


def synthetic_speech(utterances: int = 150, seed: int = 0) -> list[tuple[np.ndarray, list[Interval]]]:
    """Utterances of words from an 80-word lexicon (Zipf frequencies) spelled with 30 phones of 2-6 frames each,
    with pauses (phone 30): per utterance, the phone of every frame and the word intervals."""
    rng = np.random.default_rng(seed)
    lexicon = [rng.integers(0, 30, rng.integers(2, 7)) for _ in range(80)]
    weights = 1 / np.arange(1, 81)
    weights /= weights.sum()
    out = []
    for _ in range(utterances):
        phones, words = [30] * int(rng.integers(3, 9)), []
        for w in rng.choice(80, int(rng.integers(6, 14)), p=weights):
            start = len(phones)
            for p in lexicon[w]:
                phones += [int(p)] * int(rng.integers(2, 7))
            words.append(Interval(f"w{w}", start / RATE, len(phones) / RATE))
            if rng.random() < 0.2:
                phones += [30] * int(rng.integers(2, 8))
        phones += [30] * int(rng.integers(3, 9))
        out.append((np.array(phones), words))
    return out


def codes_of(phones: np.ndarray) -> np.ndarray:
    """Codes that follow the phones the way codec codes do: one per (phone, previous phone, position in the phone),
    so they repeat over neighbouring frames and recur wherever the phones recur."""
    codes, previous, start = np.empty_like(phones), 31, 0
    for t in range(len(phones)):
        if t and phones[t] != phones[t - 1]:
            previous, start = phones[t - 1], t
        codes[t] = (phones[t] * 37 + previous * 11 + min(t - start, 3)) % 512
    return codes


def test_codes_built_from_another_utterances_phones_get_almost_no_significant_word_partner():
    speech = synthetic_speech()
    own = [o for phones, words in speech for o in unit_occurrences(words, codes_of(phones), RATE)]
    other = [o for i, (phones, words) in enumerate(speech)  # each utterance gets the next one's codes
             for o in unit_occurrences(words, np.resize(codes_of(speech[(i + 1) % len(speech)][0]), len(phones)), RATE)]
    real, unrelated = association(own), association(other)
    assert real["codes_with_significant_partner"] > 0.5 * real["codes_seen"]
    # unrelated to these words, yet repeating across frames as real codes do: treating frames as independent draws
    # found dozens of partners here; per occurrence, (almost) none
    assert unrelated["codes_with_significant_partner"] <= 2


def test_the_p_value_is_fishers_exact_test_on_occurrence_counts():
    rng = np.random.default_rng(3)
    units = ["cat", "dog", "emu"]
    occurrences = [Occurrence((str(rng.choice(units)),), rng.integers(0, 6, rng.integers(1, 9))) for _ in range(60)]
    result = association(occurrences, min_count=1, top=10**6)
    assert result["occurrences"] == 60
    for pair in result["top_pairs"]:
        has_unit = np.array([pair["unit"] in o.units for o in occurrences])
        has_code = np.array([pair["code"] in o.codes for o in occurrences])
        table = [[np.sum(has_unit & has_code), np.sum(has_unit & ~has_code)],
                 [np.sum(~has_unit & has_code), np.sum(~has_unit & ~has_code)]]
        assert pair["occurrences"] == table[0][0]
        assert pair["p_value"] == pytest.approx(fisher_exact(table, alternative="greater").pvalue, rel=1e-9)
        frames = sum(int(np.sum(o.codes == pair["code"])) for o in occurrences if pair["unit"] in o.units)
        assert pair["count"] == frames


def test_the_correction_runs_over_every_testable_pair_including_those_never_seen_together():
    p = np.array([1e-4, 0.003, 0.02, 0.5])
    family = 50  # 46 more pairs with p = 1
    expected = false_discovery_control(np.concatenate([p, np.ones(family - len(p))]))[: len(p)]
    assert benjamini_hochberg(p, family) == pytest.approx(expected)
    occurrences = [Occurrence(("a",), np.array([1]))] * 3 + [Occurrence(("b",), np.array([2]))] * 3
    result = association(occurrences, min_count=1, min_occurrences=2)
    assert result["pairs_tested"] == 4  # {a, b} x {1, 2}: (a, 2) and (b, 1) never co-occur but count
    # p = 1 / C(6, 3) = 0.05 for (a, 1) and (b, 2); BH in a family of 4: 0.05 * 4 / 2
    assert [p["q_value"] for p in result["top_pairs"]] == pytest.approx([0.1, 0.1])


def test_perfect_and_independent_pairs_and_a_known_npmi():
    perfect = [Occurrence(("cat",), np.array([1] * 3))] * 10 + [Occurrence(("dog",), np.array([2] * 3))] * 10
    result = association(perfect)
    assert all(p["npmi"] == pytest.approx(1.0) for p in result["top_pairs"])
    assert result["codes_with_significant_partner"] == 2
    independent = [Occurrence((w,), np.array([z] * 3)) for z in (1, 2) for w in ("cat", "dog") for _ in range(5)]
    result = association(independent)
    assert all(abs(p["npmi"]) < 1e-9 for p in result["top_pairs"])
    assert result["codes_with_significant_partner"] == 0
    # frames: p(z,w) = 1/4, p(z) = 1/2, p(w) = 1/4 -> PMI = log 2, NPMI = log 2 / log 4 = 0.5
    mixed = ([Occurrence(("cat",), np.array([1] * 5))] * 5 + [Occurrence(("dog",), np.array([1] * 5))] * 5
             + [Occurrence(("emu",), np.array([2] * 5))] * 10)
    cat = next(p for p in association(mixed)["top_pairs"] if p["unit"] == "cat")
    assert cat["npmi"] == pytest.approx(0.5)


def test_occurrences_follow_the_word_intervals_at_frame_centres():
    # the last interval covers no frame centre (rate 10: centres at 0.05, 0.15, ...)
    words = [Interval("no", 0.0, 0.2), Interval("no", 0.2, 0.3), Interval("late", 0.36, 0.44)]
    occurrences = unit_occurrences(words, np.arange(5), 10.0, units=lambda w: [w, w.upper(), w])
    assert [o.units for o in occurrences] == [("no", "NO"), ("no", "NO")]  # repeats kept apart, units deduplicated
    assert [o.codes.tolist() for o in occurrences] == [[0, 1], [2]]


def test_frame_pairs_still_work_but_are_deprecated():
    with pytest.warns(DeprecationWarning, match="independent"):
        result = association([(1, "cat")] * 30 + [(2, "dog")] * 30)
    assert result["codes_with_significant_partner"] == 2


def test_codes_that_depend_only_on_the_speaker_find_no_word_partner_within_utterances():
    # two speakers with codes of their own; half the words are spoken mostly by the first: a per-occurrence test
    # over all utterances sees those words "contain" the first speaker's codes, a test within utterances does not
    rng = np.random.default_rng(1)
    utterances = []
    for index in range(300):
        speaker = index % 2
        vocabulary = rng.choice(40, 12, replace=False)
        words = [w for w in vocabulary if (w < 20) == (speaker == 0) or rng.random() < 0.05]
        occurrences = [Occurrence((f"w{w}",), rng.integers(0, 16, 3) + 16 * speaker, f"u{index}") for w in words]
        utterances.append(occurrences)
    stratified = association([o for occ in utterances for o in occ])
    pooled = association([Occurrence(o.units, o.codes) for occ in utterances for o in occ])
    assert pooled["codes_with_significant_partner"] >= 5  # the confound
    assert stratified["codes_with_significant_partner"] == 0
    assert "stratified by utterance" in stratified["test"]


def test_the_stratified_p_value_is_the_exact_tail_of_the_summed_hypergeometric_counts():
    from itertools import product

    from scipy.stats import hypergeom

    # unit "w" in two utterances; code 5 held by some occurrences of each
    strata = {"a": [(("w",), [5]), (("x",), [5]), (("y",), [1]), (("w",), [2])],
              "b": [(("w",), [5, 1]), (("x",), [5]), (("z",), [3])]}
    occurrences = [Occurrence(units, np.array(codes), name) for name, rows in strata.items() for units, codes in rows]
    result = association(occurrences, min_count=1, top=10**6, min_occurrences=1)
    pair = next(r for r in result["top_pairs"] if r["unit"] == "w" and r["code"] == 5)
    # stratum a: 4 occurrences, 2 of w, 2 holding 5; b: 3, 1 of w, 2 holding 5; observed 1 + 1 = 2
    laws = [hypergeom(4, 2, 2), hypergeom(3, 2, 1)]
    exact = sum(laws[0].pmf(i) * laws[1].pmf(j) for i, j in product(range(3), range(2)) if i + j >= 2)
    assert pair["occurrences"] == 2 and pair["p_value"] == pytest.approx(exact)


def test_real_codes_keep_their_word_partners_within_utterances():
    speech = synthetic_speech()
    own = [o for i, (phones, words) in enumerate(speech)
           for o in unit_occurrences(words, codes_of(phones), RATE, stratum=f"u{i}")]
    result = association(own)
    assert result["codes_with_significant_partner"] > 0.3 * result["codes_seen"]
