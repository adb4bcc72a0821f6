"""The corpus builder: filled fields, consistent timings, held-out voice and sentences, determinism."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from datasets import load_from_disk

from wavtokenizer_hf.corpus import build_corpus, plan_corpus, read_audio_column
from wavtokenizer_hf.corpus import espeak, festival, flite, gm_music
from wavtokenizer_hf.corpus.builder import FLITE_TEST_VOICE, TEST_VOICE
from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.errors import WavTokenizerError


@pytest.fixture
def corpus(small_corpus):
    return small_corpus


def rms(audio, rate, spans) -> float:
    parts = [audio[int(span["start"] * rate): int(span["end"] * rate)] for span in spans]
    return float(np.sqrt(np.mean(np.concatenate(parts) ** 2)))


def test_every_field_is_filled_and_timings_are_consistent(corpus):
    dataset = load_from_disk(str(corpus))
    assert set(dataset) == {"train", "validation", "test"}
    kinds = set()
    silence = speech = 0.0  # energy in pauses and in words over the whole corpus
    for split in dataset.values():
        for row in split:
            kinds.add(row["kind"])
            audio, rate = read_audio_column(row)
            assert rate == 24000 and audio.ndim == 1 and abs(len(audio) / rate - row["duration"]) < 1e-3
            assert row["id"] and row["source"] and row["duration"] > 0
            if row["kind"] != "speech":
                continue
            assert row["text"] and row["voice"] and row["rate"] > 0 and row["words"] and row["phones"]
            words, phones = row["words"], row["phones"]
            for spans in (words, phones):
                previous_end = 0.0
                for span in spans:
                    assert previous_end - 1e-4 <= span["start"] < span["end"] <= row["duration"] + 1e-4
                    previous_end = span["end"]
            # phones tile the audio: each ends where the next begins, the last at the end of the audio
            assert all(a["end"] == b["start"] for a, b in zip(phones, phones[1:])), row["id"]
            assert phones[0]["start"] < 0.1 and abs(phones[-1]["end"] - row["duration"]) < 1e-3, row["id"]
            # pauses are where the silence is: a wrong time unit or offset puts speech into the 'sil' spans
            pauses = [p for p in phones if p["phone"] == "sil"]
            assert pauses and rms(audio, rate, pauses) < 0.2 * rms(audio, rate, words), row["id"]
            silence += rms(audio, rate, pauses) ** 2 * sum(p["end"] - p["start"] for p in pauses)
            speech += rms(audio, rate, words) ** 2 * sum(w["end"] - w["start"] for w in words)
            # the words are the text's words, in order (an espeak word may hold several: "has been")
            spoken = [w for span in words for w in span["word"].lower().split()]
            assert spoken == normalize_words(row["text"]), row["id"]
    assert kinds == {"speech", "music", "noise"}
    assert silence < 1e-3 * speech  # pauses hold under 0.1 % of the energy (measured: 0.004 %)


def test_test_split_is_held_out(corpus):
    dataset = load_from_disk(str(corpus))
    test_speech = [r for r in dataset["test"] if r["kind"] == "speech"]
    seen_voices = {r["voice"] for s in ("train", "validation") for r in dataset[s] if r["kind"] == "speech"}
    accent, variant = TEST_VOICE.split("+")  # the espeak test voice (also flite's fallback in the test split)
    espeak_voices = {v for v in seen_voices if ":" not in v}
    assert all(v.split("+")[0] != accent and v.split("+")[1] != variant for v in espeak_voices)
    if FLITE_TEST_VOICE in flite.installed_voices():  # a natural test speaker, unheard in training
        expected = {f"flite:{FLITE_TEST_VOICE}"} | ({f"festival:{festival.VOICE}"} if festival.available() else set())
        # a sentence flite cannot time falls back to the espeak test voice (builder._synthesize_speech)
        assert test_speech and expected <= {r["voice"] for r in test_speech} <= expected | {TEST_VOICE}
        assert not any("slt" in v for v in seen_voices)
    else:
        assert test_speech and {r["voice"] for r in test_speech} == {TEST_VOICE}
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


def test_plan_with_natural_voices_holds_one_out_for_the_test_split():
    both = [i.voice for i in plan_corpus(2.0, seed=0, natural_voices=("awb", "rms", "slt", "festival:slt_hts"))
            if i.kind == "speech" and i.split == "test"]
    assert set(both) == {"flite:slt", "festival:slt_hts"} and abs(both.count("flite:slt") - len(both) / 2) <= 1
    items = [i for i in plan_corpus(2.0, seed=0, natural_voices=("awb", "rms", "slt")) if i.kind == "speech"]
    test = {i.voice for i in items if i.split == "test"}
    train = [i.voice for i in items if i.split != "test"]
    assert test == {"flite:slt"} and not any("slt" in v for v in train)
    natural = sum(v.startswith("flite:") for v in train) / len(train)
    assert {"flite:awb", "flite:rms"} <= set(train) and 0.4 < natural < 0.6  # the rest stays espeak
    espeak_only = plan_corpus(2.0, seed=0)
    assert not any(i.voice.startswith("flite:") for i in espeak_only)


needs_flite = pytest.mark.skipif(not flite.installed_voices(), reason="flite not installed (make corpus-extras)")


@needs_flite
@pytest.mark.parametrize("voice", ["awb", "slt"])
def test_flite_timings_cover_the_audio_and_split_into_the_words(voice):
    text = "Well, Mrs. Bennet, I hope you have not been disappointed by the weather at Longbourn."
    spoken = flite.synthesize(text, voice, stretch=1.2)
    audio, rate = spoken.audio.astype(np.float32) / 32768, spoken.sampling_rate
    phones, words = spoken.phones, spoken.words
    assert phones[0]["start"] == 0 and abs(phones[-1]["end"] - len(audio) / rate) < 1e-3
    assert all(a["end"] == b["start"] for a, b in zip(phones, phones[1:]))  # contiguous, no gaps or overlaps
    assert [w["word"] for w in words] == normalize_words(text)
    non_pause = [p for p in phones if p["phone"] != "sil"]
    assert words[0]["start"] == non_pause[0]["start"] and words[-1]["end"] == non_pause[-1]["end"]
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))

    def rms(spans):
        parts = [audio[int(s["start"] * rate): int(s["end"] * rate)] for s in spans]
        return float(np.sqrt(np.mean(np.concatenate(parts) ** 2)))

    assert rms([p for p in phones if p["phone"] == "sil"]) < 0.2 * rms(words)  # pauses are where the silence is
    slower = flite.synthesize(text, voice, stretch=1.5)
    assert slower.phones[-1]["end"] > 1.15 * phones[-1]["end"]  # the speaking rate is applied


@needs_flite
def test_flite_refuses_the_held_out_diphone_voice():
    with pytest.raises(WavTokenizerError, match="not a training voice"):
        flite.synthesize("hello there", "kal")


def test_midi_writer_encodes_variable_lengths_and_orders_note_offs_first():
    midi = gm_music.midi_file([(0, bytes([0x90, 60, 100])), (480, bytes([0x80, 60, 0])), (480, bytes([0x90, 62, 90]))],
                              500000)
    assert midi[:4] == b"MThd" and midi[14:18] == b"MTrk"
    track = midi[22:]
    assert track[:7] == b"\x00\xff\x51\x03\x07\xa1\x20"  # tempo 500,000 us per quarter
    assert track[7:11] == b"\x00\x90\x3c\x64" and track[11:16] == b"\x83\x60\x80\x3c\x00"  # 480 = 0x83 0x60
    assert track[16:20] == b"\x00\x90\x3e\x5a"


@pytest.mark.skipif(not gm_music.available(), reason="fluidsynth or its GM soundfont not installed (make corpus-extras)")
def test_general_midi_music_is_seeded_and_sounds():
    first, description = gm_music.render(3.0, 24000, np.random.default_rng(7))
    again, _ = gm_music.render(3.0, 24000, np.random.default_rng(7))
    other, _ = gm_music.render(3.0, 24000, np.random.default_rng(8))
    assert first.shape == (72000,) and np.array_equal(first, again) and not np.array_equal(first, other)
    assert 0.2 < float(np.abs(first).max()) <= 0.8 and float(np.sqrt(np.mean(first**2))) > 0.01
    assert "General MIDI programs" in description


def test_a_sentence_flite_cannot_time_falls_back_to_an_espeak_voice(monkeypatch):
    from wavtokenizer_hf.corpus import builder

    def refuse(*args, **kwargs):
        raise WavTokenizerError("flite's phones do not split into its words")

    monkeypatch.setattr(builder.flite, "synthesize", refuse)
    item = builder.Item(id="x", split="train", kind="speech", text="Hello there, my friend.", voice="flite:awb",
                        rate=170, pitch=50, pitch_range=50, seed=11)
    audio, rate, words, phones, voice = builder._synthesize_speech(item)
    assert not voice.startswith("flite:") and "+" in voice and len(audio) > 0 and words[0]["word"].lower() == "hello"


@pytest.mark.skipif(not festival.available(), reason="festival or festvox-us-slt-hts not installed (make corpus-extras)")
def test_festival_timings_cover_the_audio_and_name_the_words():
    text = '"Well," said Mrs. Bennet, "I hope you have not been disappointed by the weather."'
    spoken = festival.synthesize(text, stretch=1.1)
    phones, words = spoken.phones, spoken.words
    assert phones[0]["start"] == 0 and abs(phones[-1]["end"] - len(spoken.audio) / spoken.sampling_rate) < 1e-3
    assert all(a["end"] == b["start"] for a, b in zip(phones, phones[1:]))
    assert [w["word"] for w in words] == normalize_words(text)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    inside = [p for p in phones if p["phone"] != "sil"]
    assert words[0]["start"] == inside[0]["start"] and words[-1]["end"] == inside[-1]["end"]


def _espeak_words(text: str) -> list[str]:
    """espeak-ng's word timings of one sentence by the test voice (in a fresh process: libespeak keeps state)."""
    words, _ = espeak.timings(espeak.synthesize(text, TEST_VOICE, 170, 50, 50, seed=1), text)
    return [w for span in words for w in span["word"].lower().split()]


@pytest.mark.parametrize("text", ["This answer might have been too much for the comprehension of many.",
                                  "Poor man!--it was at first a considerable shock to him."])
def test_espeak_names_each_word_of_the_text_once(text):
    with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as pool:
        assert pool.apply(_espeak_words, (text,)) == normalize_words(text)
