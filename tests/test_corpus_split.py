"""wavtokenizer_hf.corpus.text.sentence_split: near-duplicate sentences (case, punctuation, spacing) share a split."""

from __future__ import annotations

import random

from wavtokenizer_hf.corpus.text import load_sentence_pools, normalize_words, sentence_split


def test_sentences_equal_up_to_case_punctuation_and_spacing_land_in_one_split():
    rng = random.Random(0)
    words = "the lady said that she would go to town on monday and not return before the ball".split()
    for _ in range(200):
        sentence = " ".join(rng.sample(words, rng.randint(4, 10)))
        variants = [sentence.capitalize() + ".", sentence.upper(), f'"{sentence}!"', sentence.replace(" ", "  "),
                    sentence.replace(" ", ", ", 1) + "?"]
        assert {sentence_split(v) for v in variants} == {sentence_split(sentence)}, sentence


def test_the_shipped_sentence_pools_share_no_sentence_up_to_normalisation():
    pools = load_sentence_pools()
    normalised = {name: {" ".join(normalize_words(s)) for s in pool} for name, pool in pools.items()}
    assert not normalised["test"] & normalised["train"]
    assert not normalised["validation"] & normalised["train"]
    assert not normalised["test"] & normalised["validation"]
