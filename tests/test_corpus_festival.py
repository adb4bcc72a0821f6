"""The Festival corpus backend's voices in every language: the people behind them, and what `speak` gives back."""

from __future__ import annotations

import dataclasses
import functools
import shutil

import numpy as np
import pytest

from wavtokenizer_hf.corpus import festival
from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.corpus.voices import AGES, SEXES, Voice
from wavtokenizer_hf.errors import WavTokenizerError

pytestmark = pytest.mark.skipif(shutil.which("festival") is None,
                                reason="festival is not installed (Debian festival and festvox-* voices)")

# language -> (voice preferred for the test, a short native sentence, the words Festival should name)
NATIVE = {
    "cs": ("czech_krb", "Dobrý den, jak se máte?", ["dobrý", "den", "jak", "se", "máte"]),
    "it": ("lp_diphone", "Buongiorno, come stai oggi?", ["buongiorno", "come", "stai", "oggi"]),
    "ru": ("msu_ru_nsh_clunits", "Здравствуйте, как у вас дела?", ["здравствуйте", "как", "у", "вас", "дела"]),
    "ca": ("upc_ca_ona_hts", "Bon dia, com estàs avui?", ["bon", "dia", "com", "estàs", "avui"]),
}


def _voice(name: str) -> Voice:
    found = {voice.name: voice for voice in festival.installed_voices()}
    if name not in found:
        pytest.skip(f"Festival voice {name} is not installed")
    return found[name]


@functools.lru_cache(maxsize=None)
def _speak(name: str, text: str, speed: float = 1.0, pitch: float = 0.0):
    return festival.speak(text, _voice(name), speed=speed, pitch=pitch)


def _duration(speech) -> float:
    return len(speech.audio) / speech.sampling_rate


def _rms(speech, spans) -> float:
    audio, rate = speech.float_audio(), speech.sampling_rate
    samples = np.concatenate([audio[int(s["start"] * rate):int(s["end"] * rate)] for s in spans])
    return float(np.sqrt(np.mean(samples ** 2)))


def _median_f0(speech) -> float:
    """Median F0 of the loud frames, by autocorrelation over 40 ms frames (60..400 Hz)."""
    audio, rate = speech.float_audio(), speech.sampling_rate
    size, loudness, found = int(0.04 * rate), np.sqrt(np.mean(audio ** 2)), []
    for start in range(0, len(audio) - size, size // 2):
        frame = audio[start:start + size] - audio[start:start + size].mean()
        if np.sqrt(np.mean(frame ** 2)) < 0.5 * loudness:
            continue
        correlation = np.correlate(frame, frame, "full")[size - 1:]
        low, high = rate // 400, rate // 60
        lag = low + int(np.argmax(correlation[low:high]))
        if correlation[lag] > 0.5 * correlation[0]:
            found.append(rate / lag)
    return float(np.median(found))


def test_the_reserved_kal_ked_and_kdl_voices_are_never_listed_nor_spoken():
    voices = festival.installed_voices()
    assert voices, "festival is installed but no voice of this module speaks"
    names = {v.name for v in voices} | {v.speaker for v in voices}
    assert not names & {"kal", "ked", "kdl", "kal_diphone", "ked_diphone", "kdl_diphone"}
    kal = dataclasses.replace(voices[0], name="kal_diphone", speaker="kal")
    with pytest.raises(WavTokenizerError, match="kal"):
        festival.speak("Hello.", kal)


def test_the_czech_krb_voice_is_a_boy():
    krb = _voice("czech_krb")
    assert (krb.speaker, krb.sex, krb.age, krb.language) == ("krb", "male", "child", "cs")


def test_every_listed_voice_names_its_speaker_sex_age_language_and_licence():
    voices = festival.installed_voices()
    assert [v.name for v in voices] == sorted({v.name for v in voices})
    for voice in voices:
        assert voice.backend == "festival" and voice.key == f"festival:{voice.name}"
        assert voice.speaker and voice.speaker.isascii() and voice.speaker == voice.speaker.lower(), voice
        assert voice.sex in SEXES[:2] and voice.age in AGES, voice
        assert voice.language in {"cs", "it", "fi", "ru", "ca", "hi", "mr", "te", "es", "en"}, voice
        assert len(voice.licence) > 10 and voice.timed, voice
    by_name = {v.name: v for v in voices}
    if "cmu_us_slt_arctic_hts" in by_name:  # the same person as Flite's and RHVoice's slt
        assert by_name["cmu_us_slt_arctic_hts"].speaker == "slt"
    nsk = {v.speaker for v in voices if "NSK" in v.name}
    assert len(nsk) <= 1  # the Hindi, Marathi and Telugu voices share one man's diphones


@pytest.mark.parametrize("language", sorted(NATIVE))
def test_a_voice_speaks_a_native_sentence_into_audio_its_phones_tile_with_pauses_quieter_than_words(language):
    name, text, words = NATIVE[language]
    voice = _voice(name)
    assert voice.language == language
    speech = _speak(name, text)
    duration = _duration(speech)
    assert speech.audio.dtype == np.int16 and speech.audio.ndim == 1 and 0.8 < duration < 6.0, duration
    assert [w["word"] for w in speech.words] == words  # the text reached the voice in its own encoding
    phones = speech.phones
    assert phones[0]["start"] == 0 and abs(phones[-1]["end"] - duration) < 1e-3
    assert all(a["end"] == b["start"] and a["start"] < a["end"] for a, b in zip(phones, phones[1:]))
    assert sum(p["phone"] != "sil" for p in phones) >= 2 * len(words)
    assert all(a["end"] <= b["start"] for a, b in zip(speech.words, speech.words[1:]))
    pauses = [p for p in phones if p["phone"] == "sil"]
    assert pauses and _rms(speech, pauses) < 0.5 * _rms(speech, speech.words)


def test_the_english_hts_voice_names_the_words_of_its_text():
    text = "Hello there, how are you doing today?"
    speech = _speak("cmu_us_slt_arctic_hts", text)
    assert [w["word"] for w in speech.words] == normalize_words(text)


@pytest.mark.parametrize("name", ["czech_krb", "upc_ca_ona_hts"])  # a diphone and an HTS voice
def test_speed_one_and_a_half_gives_audio_two_thirds_as_long(name):
    text = NATIVE[_voice(name).language][1]
    ratio = _duration(_speak(name, text, speed=1.5)) / _duration(_speak(name, text))
    assert 0.6 < ratio < 0.75, ratio


def test_four_semitones_up_raises_a_diphone_voices_pitch_by_about_a_quarter():
    voice = _voice("czech_machac")
    assert voice.pitch_shift
    text = NATIVE["cs"][1]
    ratio = _median_f0(_speak(voice.name, text, pitch=4.0)) / _median_f0(_speak(voice.name, text))
    assert 1.15 < ratio < 1.4, ratio


def test_the_same_call_twice_gives_identical_samples():
    voice = _voice("lp_diphone")
    first = festival.speak(NATIVE["it"][1], voice, speed=1.2, seed=3)
    second = festival.speak(NATIVE["it"][1], voice, speed=1.2, seed=3)
    assert np.array_equal(first.audio, second.audio) and first.phones == second.phones


def test_a_voice_festival_does_not_have_raises_naming_it():
    bad = dataclasses.replace(_voice("czech_krb"), name="czech_nobody")
    with pytest.raises(WavTokenizerError, match="czech_nobody"):
        festival.speak(NATIVE["cs"][1], bad)


def test_text_outside_the_voices_encoding_is_refused_naming_the_voice():
    with pytest.raises(WavTokenizerError, match="czech_krb.*iso-8859-2"):
        festival.speak(NATIVE["ru"][1], _voice("czech_krb"))


def test_the_unit_selection_voice_speaks_only_at_its_own_speed():
    voice = _voice("msu_ru_nsh_clunits")
    assert not festival.changes_speed(voice) and not voice.pitch_shift
    with pytest.raises(WavTokenizerError, match="msu_ru_nsh_clunits"):
        festival.speak(NATIVE["ru"][1], voice, speed=1.5)
