"""The corpus builder: filled fields, consistent timings, held-out voice and sentences, determinism."""

from __future__ import annotations

import pytest
from datasets import load_from_disk

from wavtokenizer_hf.corpus import build_corpus, plan_corpus, read_audio_column
from wavtokenizer_hf.corpus.builder import TEST_VOICE
from wavtokenizer_hf.errors import WavTokenizerError


@pytest.fixture
def corpus(small_corpus):
    return small_corpus


def test_every_field_is_filled_and_timings_are_consistent(corpus):
    dataset = load_from_disk(str(corpus))
    assert set(dataset) == {"train", "validation", "test"}
    kinds = set()
    for split in dataset.values():
        for row in split:
            kinds.add(row["kind"])
            audio, rate = read_audio_column(row)
            assert rate == 24000 and audio.ndim == 1 and abs(len(audio) / rate - row["duration"]) < 1e-3
            assert row["id"] and row["source"] and row["duration"] > 0
            if row["kind"] != "speech":
                continue
            assert row["text"] and row["voice"] and row["rate"] > 0 and row["words"] and row["phones"]
            for spans in (row["words"], row["phones"]):
                previous_end = 0.0
                for span in spans:
                    assert previous_end - 1e-4 <= span["start"] < span["end"] <= row["duration"] + 1e-4
                    previous_end = span["end"]
            spoken = " ".join(w["word"] for w in row["words"]).lower()
            assert spoken.split()[0] in row["text"].lower()
    assert kinds == {"speech", "music", "noise"}


def test_test_split_is_held_out(corpus):
    dataset = load_from_disk(str(corpus))
    test_speech = [r for r in dataset["test"] if r["kind"] == "speech"]
    assert test_speech and {r["voice"] for r in test_speech} == {TEST_VOICE}
    seen_voices = {r["voice"] for s in ("train", "validation") for r in dataset[s] if r["kind"] == "speech"}
    accent, variant = TEST_VOICE.split("+")
    assert all(v.split("+")[0] != accent and v.split("+")[1] != variant for v in seen_voices)
    train_text = {r["text"] for r in dataset["train"]}
    assert not train_text & {r["text"] for r in test_speech}


def test_same_seed_gives_identical_corpus(corpus, tmp_path):
    build_corpus(tmp_path / "b", hours=0.02, seed=3, jobs=1)
    first, second = load_from_disk(str(corpus)), load_from_disk(str(tmp_path / "b"))
    for split in first:
        assert first[split].to_list() == second[split].to_list()


def test_plan_scales_to_twenty_hours():
    items = plan_corpus(20.0, seed=0)
    voices = {i.voice for i in items if i.split == "train"}
    assert len(items) > 10_000 and len(voices) > 100
    with pytest.raises(WavTokenizerError, match="--hours must be positive"):
        plan_corpus(0)
