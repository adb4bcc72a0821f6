"""The corpus builder: filled fields, consistent timings, held-out voice and sentences, determinism."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from datasets import load_from_disk

from wavtokenizer_hf.corpus import build_corpus, plan_corpus, read_audio_column
from wavtokenizer_hf.corpus import catalogue, espeak, festival, flite, gm_music
from wavtokenizer_hf.corpus.plan import MIN_SPEAKER_SECONDS
from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.corpus.voices import Speech, Voice, is_reserved
from wavtokenizer_hf.errors import WavTokenizerError

TEST_VOICE = f"{espeak.TEST_ACCENT}+{espeak.TEST_VARIANT}"
UNTIMED_BACKENDS = {"mbrola", "rhvoice", "piper", "klettres", "ktuberling"}


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
            assert row["id"] and row["source"] and row["duration"] > 0 and row["licence"]
            if row["kind"] != "speech":
                continue
            assert row["text"] and row["voice"] and row["rate"] > 0 and row["speaker"] and row["language"]
            assert row["sex"] in ("female", "male", "unknown") and row["age"] in ("adult", "child") and row["backend"]
            if row["backend"] in UNTIMED_BACKENDS:
                assert not row["words"] and not row["phones"]
                continue
            words, phones = row["words"], row["phones"]
            assert words and phones
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
            if row["language"] == "en":  # the words are the text's words, in order (an espeak word may hold several)
                spoken = [w for span in words for w in span["word"].lower().split()]
                assert spoken == normalize_words(row["text"]), row["id"]
    assert kinds == {"speech", "music", "noise"}
    assert silence < 1e-3 * speech  # pauses hold under 0.1 % of the energy (measured: 0.004 %)


def test_test_speakers_are_heard_in_no_other_split_and_read_unseen_english_sentences(corpus):
    dataset = load_from_disk(str(corpus))
    test_speech = [r for r in dataset["test"] if r["kind"] == "speech"]
    heard = {r["speaker"] for s in ("train", "validation") for r in dataset[s] if r["kind"] == "speech"}
    test_speakers = {r["speaker"] for r in test_speech}
    assert test_speech and not test_speakers & heard
    assert {r["language"] for r in test_speech} == {"en"}
    assert "espeak-f4" not in heard  # the espeak test variant stays unheard even where natural test voices exist
    if test_speakers == {"espeak-f4"}:
        assert {r["voice"] for r in test_speech} == {TEST_VOICE}
    train_text = {r["text"] for r in dataset["train"]}
    assert not train_text & {r["text"] for r in test_speech}
    validation = {r["speaker"] for r in dataset["validation"] if r["kind"] == "speech"}
    assert validation <= {r["speaker"] for r in dataset["train"] if r["kind"] == "speech"}


def test_a_built_corpus_holds_no_reserved_voice(corpus):
    import json

    dataset = load_from_disk(str(corpus))
    for split in dataset.values():
        for row in split:
            if row["kind"] == "speech":
                assert not is_reserved(row["backend"], row["speaker"]), row
                assert not is_reserved(row["backend"], row["voice"].split(":", 1)[-1]), row
    summary = json.loads((corpus / "corpus_summary.json").read_text())
    assert summary["speakers"] and all(not is_reserved(b, name) for name, entry in summary["speakers"].items()
                                       for b in entry["backends"])


def test_the_catalogue_refuses_a_backend_that_lists_a_reserved_voice(monkeypatch):
    reserved = Voice("mbrola", "mb-us1", "mbrola-us1", "female", "en", "test")
    monkeypatch.setattr("wavtokenizer_hf.corpus.mbrola.installed_voices", lambda: [reserved])
    with pytest.raises(AssertionError, match="reserved voice mbrola:mb-us1"):
        catalogue.installed_voices()
    assert is_reserved("mbrola", "mb-us1-en") and is_reserved("rhvoice", "clb") and is_reserved("klettres", "fr")
    assert not is_reserved("mbrola", "mbrola-us2") and not is_reserved("ktuberling", "fr")


def test_same_seed_gives_identical_corpus(corpus, tmp_path):
    build_corpus(tmp_path / "b", hours=0.02, seed=3, jobs=1)
    first, second = load_from_disk(str(corpus)), load_from_disk(str(tmp_path / "b"))
    for split in first:
        assert first[split].to_list() == second[split].to_list()


def test_a_split_built_alone_holds_the_rows_a_whole_build_gives_it(corpus, tmp_path):
    build_corpus(tmp_path / "t", hours=0.02, seed=3, jobs=1, splits=("test",))
    whole, alone = load_from_disk(str(corpus)), load_from_disk(str(tmp_path / "t"))
    assert list(alone) == ["test"]
    assert alone["test"].to_list() == whole["test"].to_list()
    assert {"speech", "music"} <= set(alone["test"]["kind"])  # its own non-speech clips too
    with pytest.raises(WavTokenizerError, match="corpus splits must be some of"):
        build_corpus(tmp_path / "x", hours=0.02, seed=3, jobs=1, splits=("dev",))
    read = frozenset(t for t in whole["test"]["text"] if t)
    unread = build_corpus(tmp_path / "u", hours=0.02, seed=3, jobs=1, splits=("test",), exclude_texts=read)
    texts = [t for t in load_from_disk(str(tmp_path / "u"))["test"]["text"] if t]
    assert texts and not set(texts) & read and unread["texts_excluded"] == len(read)
    named = build_corpus(tmp_path / "n", hours=0.02, seed=3, jobs=1, splits=("test",), test_speakers=("espeak-f4",))
    speech = [r["speaker"] for r in load_from_disk(str(tmp_path / "n"))["test"] if r["kind"] == "speech"]
    assert named["test_speakers"] == ["espeak-f4"] and speech and set(speech) == {"espeak-f4"}


def _fake_speakers(counts: dict[str, int], language: str = "en") -> dict:
    voices = [Voice(backend, f"{backend}{i}", f"{backend}-{i}", ("female", "male")[i % 2], language, "test")
              for backend, n in counts.items() for i in range(n)]
    return catalogue.group_speakers(voices + [Voice("espeak", "f4", "espeak-f4", "female", "en", "test")])


def test_plan_spreads_the_hours_over_speakers_not_backends():
    speakers = _fake_speakers({"espeak": 1, "mbrola": 9, "flite": 1})
    plan = plan_corpus(2.0, speakers, seed=0)
    seconds: dict = {}
    for item in plan.items:
        if item.kind == "speech" and item.split == "train":
            seconds[item.voice.speaker] = seconds.get(item.voice.speaker, 0) + len(item.text.split()) * 60 / (
                170 * item.speed) + 0.4
    assert plan.test_speakers == ["espeak-f4"] and "espeak-f4" not in seconds  # no natural test speaker here
    assert len(seconds) == 11 and max(seconds.values()) < 1.1 * min(seconds.values())
    with pytest.raises(WavTokenizerError, match="--hours must be positive"):
        plan_corpus(0, speakers)


def test_what_a_recorded_speaker_cannot_fill_goes_to_the_others():
    from wavtokenizer_hf.corpus.plan import _equal_shares

    shares = _equal_shares(100.0, ["a", "b", "c", "d"], {"a": 10.0, "b": 40.0})
    assert shares == {"a": 10.0, "b": 30.0, "c": 30.0, "d": 30.0}
    shares = _equal_shares(100.0, ["a", "b", "c"], {"a": 10.0, "b": 20.0})
    assert shares == {"a": 10.0, "b": 20.0, "c": 70.0} and sum(shares.values()) == 100.0


def test_plan_scales_to_twenty_hours_and_a_small_corpus_draws_a_subset_of_speakers():
    speakers = _fake_speakers({"espeak": 1, "mbrola": 200})
    big = plan_corpus(20.0, speakers, seed=0)
    train = [i for i in big.items if i.split == "train" and i.kind == "speech"]
    assert len(train) > 10_000 and len({i.voice.speaker for i in train}) == 201
    small = [i for i in plan_corpus(0.05, speakers, seed=0).items if i.split == "train" and i.kind == "speech"]
    expected = int(0.05 * 3600 * 0.85 * 0.9 / MIN_SPEAKER_SECONDS["train"])
    assert len({i.voice.speaker for i in small}) == expected


def test_plan_puts_the_preferred_test_speakers_in_the_test_split_with_their_english_voices_only():
    voices = [Voice("flite", "slt", "slt", "female", "en", "t"), Voice("rhvoice", "slt", "slt", "female", "en", "t"),
              Voice("mbrola", "mb-de5", "mbrola-de5", "female", "de", "t"),
              Voice("mbrola", "mb-de5-en", "mbrola-de5", "female", "en", "t"),
              Voice("rhvoice", "bdl", "bdl", "male", "en", "t"), Voice("flite", "awb", "awb", "male", "en", "t")]
    plan = plan_corpus(1.0, catalogue.group_speakers(voices), seed=0)
    test = [i for i in plan.items if i.split == "test" and i.kind == "speech"]
    assert plan.test_speakers == ["slt", "bdl", "mbrola-de5"]
    assert {i.voice.key for i in test} == {"flite:slt", "rhvoice:slt", "mbrola:mb-de5-en", "rhvoice:bdl"}
    assert {i.voice.speaker for i in plan.items if i.kind == "speech" and i.split != "test"} == {"awb"}


def test_named_test_speakers_replace_the_preferred_ones_and_no_other_split_hears_them():
    voices = [Voice("flite", "slt", "slt", "female", "en", "t"), Voice("rhvoice", "bdl", "bdl", "male", "en", "t"),
              Voice("mbrola", "mb-us2", "mbrola-us2", "male", "en", "t"),
              Voice("rhvoice", "evgeniy-rus", "evgeniy", "male", "ru", "t"),
              Voice("rhvoice", "evgeniy-eng", "evgeniy", "male", "en", "t"),
              Voice("mbrola", "mb-de2", "mbrola-de2", "male", "de", "t"), Voice("flite", "awb", "awb", "male", "en", "t")]
    speakers = catalogue.group_speakers(voices)
    plan = plan_corpus(1.0, speakers, seed=0, test_speakers=("mbrola-us2", "evgeniy", "slt", "evgeniy"))
    test = [i for i in plan.items if i.split == "test" and i.kind == "speech"]
    assert plan.test_speakers == ["mbrola-us2", "evgeniy", "slt"]
    assert {i.voice.key for i in test} == {"mbrola:mb-us2", "rhvoice:evgeniy-eng", "flite:slt"}
    heard = {i.voice.speaker for i in plan.items if i.kind == "speech" and i.split != "test"}
    assert heard == {"bdl", "awb", "mbrola-de2"}  # bdl, a preferred test speaker, trains when not named
    with pytest.raises(WavTokenizerError, match="no English voice here: mbrola-de2, joe \\(those with one: awb, bdl"):
        plan_corpus(1.0, speakers, seed=0, test_speakers=("slt", "mbrola-de2", "joe"))


def test_a_voice_that_cannot_speak_a_sentence_tries_the_spare_ones_and_one_that_never_speaks_is_reported(
        monkeypatch, tmp_path):
    from wavtokenizer_hf.corpus import builder

    calls = []

    def picky(text, voice, speed=1.0, pitch=0.0, seed=0):
        calls.append(text)
        if voice.name == "m3" or len(calls) == 1:
            raise WavTokenizerError(f"espeak voice {voice.name}: refused")
        return Speech(np.full(2400, 0.1, np.float32), 24000, [], [])

    monkeypatch.setattr(espeak, "speak", picky)
    voice = Voice("espeak", "m1", "espeak-m1", "male", "en", "test")
    item = builder.Item(id="x", split="train", kind="speech", text="first", voice=voice, language="en",
                        spare_texts=["second", "third"])
    audio, rate, _, _, text, _ = builder._synthesize_speech(item)
    assert text == "second" and calls == ["first", "second"] and rate == 24000
    monkeypatch.setattr(catalogue, "installed_voices", lambda natural=True, licence="any": [
        Voice("espeak", n, f"espeak-{n}", s, "en", "test") for n, s in (("m1", "male"), ("m3", "male"),
                                                                        ("f4", "female"))])
    summary = builder.build_corpus(tmp_path / "c", hours=0.01, seed=0, jobs=1)
    assert "espeak:m3" in summary["voices_skipped"] and "refused" in summary["voices_skipped"]["espeak:m3"]
    assert "espeak-m3" not in summary["speakers"] and "espeak-m1" in summary["speakers"]


def test_a_free_licence_build_leaves_out_every_voice_whose_licence_restricts_use(monkeypatch):
    monkeypatch.setattr("wavtokenizer_hf.corpus.mbrola.installed_voices",
                        lambda: [Voice("mbrola", "mb-de1", "mbrola-de1", "female", "de", "non-free", free=False)])
    assert any(v.backend == "mbrola" for v in catalogue.installed_voices(licence="any"))
    free = catalogue.installed_voices(licence="free")
    assert free and all(v.free for v in free) and not any(v.backend in ("mbrola", "rhvoice") for v in free)
    with pytest.raises(ValueError, match="licence must be"):
        catalogue.installed_voices(licence="gratis")


needs_flite = pytest.mark.skipif(not flite.installed_training_voices(), reason="flite not installed (make corpus-extras)")


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


def test_a_synthesiser_s_wav_that_is_silent_stereo_or_broken_is_refused_with_the_voice_named(tmp_path):
    import wave

    from wavtokenizer_hf.corpus.voices import read_pcm16_wav

    def write(name, samples, channels=1):
        path = tmp_path / name
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(channels)
            handle.setsampwidth(2)
            handle.setframerate(16000)
            handle.writeframes(np.asarray(samples, dtype="<i2").tobytes())
        return path

    audio, rate = read_pcm16_wav(write("ok.wav", [0, 500, -500, 0]), "voice x")
    assert rate == 16000 and audio.tolist() == [0, 500, -500, 0]
    with pytest.raises(WavTokenizerError, match="voice x: silent audio"):
        read_pcm16_wav(write("quiet.wav", [0, 10, -10, 0]), "voice x")
    with pytest.raises(WavTokenizerError, match="voice x: wrote 2 channel"):
        read_pcm16_wav(write("stereo.wav", [0, 500, -500, 0], channels=2), "voice x")
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000")
    with pytest.raises(WavTokenizerError, match="voice x: unreadable WAV"):
        read_pcm16_wav(tmp_path / "broken.wav", "voice x")


def test_a_plan_reads_none_of_the_excluded_sentences_and_refuses_to_exclude_them_all():
    from wavtokenizer_hf.corpus import native_text
    from wavtokenizer_hf.corpus.text import load_sentence_pools

    speakers = _fake_speakers({"espeak": 2})
    first = plan_corpus(0.2, speakers, seed=0)
    read = frozenset(t for i in first.items if i.split == "test" for t in [i.text, *i.spare_texts] if t)
    again = [i for i in plan_corpus(0.2, speakers, seed=0, exclude_texts=read).items
             if i.split == "test" and i.kind == "speech"]
    assert len(read) > 10 and again
    assert not {t for i in again for t in [i.text, *i.spare_texts]} & read
    with pytest.raises(WavTokenizerError, match="every en test sentence is excluded"):
        plan_corpus(0.2, speakers, seed=0, exclude_texts=frozenset(load_sentence_pools()["test"]))
    german = _fake_speakers({"mbrola": 2}, language="de")
    with pytest.raises(WavTokenizerError, match="every de train sentence is excluded"):
        plan_corpus(0.2, german, seed=0, exclude_texts=frozenset(native_text.sentence_pools("de")["train"]))
