"""The RHVoice corpus backend: its voices, the people behind them, and what `speak` gives back."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from wavtokenizer_hf.corpus import rhvoice
from wavtokenizer_hf.corpus.voices import Voice
from wavtokenizer_hf.errors import WavTokenizerError

pytestmark = pytest.mark.skipif(not rhvoice.available(),
                                reason="RHVoice is not installed (Debian non-free rhvoice and rhvoice-<language>)")

ENGLISH = "The quick brown fox jumps over the lazy dog near the bank of the river."
RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей чаю."


def _voice(name: str) -> Voice:
    found = {voice.name: voice for voice in rhvoice.installed_voices()}
    if name not in found:
        pytest.skip(f"RHVoice voice {name} is not installed")
    return found[name]


@functools.lru_cache(maxsize=None)
def _speak(name: str, text: str, speed: float = 1.0, pitch: float = 0.0):
    return rhvoice.speak(text, _voice(name), speed=speed, pitch=pitch)


def _median_f0(speech) -> float:
    import librosa

    audio = speech.float_audio()
    f0 = librosa.yin(audio, fmin=60, fmax=500, sr=speech.sampling_rate, frame_length=1200)
    frame = librosa.util.frame(np.pad(audio, 600), frame_length=1200, hop_length=300)
    loud = np.sqrt((frame ** 2).mean(axis=0))[:len(f0)] > 0.02  # voiced-ish frames only
    return float(np.median(f0[:len(loud)][loud]))


def test_every_installed_rhvoice_voice_names_its_speaker_sex_language_and_licence():
    voices = rhvoice.installed_voices()
    assert voices and [v.name for v in voices] == sorted({v.name for v in voices})
    languages = {code for code, _ in rhvoice.LANGUAGES.values()}
    for voice in voices:
        assert voice.backend == "rhvoice" and voice.name == voice.name.lower()
        assert voice.speaker and voice.speaker.isascii() and voice.speaker == voice.speaker.lower()
        assert voice.sex in ("female", "male"), voice
        assert voice.language in languages, voice
        assert any(name in voice.licence for name in ("CC BY", "LGPL-2.1+", "Talgat")), voice.licence
        assert "non-free" in voice.licence
        assert not voice.timed and voice.pitch_shift


def test_the_reserved_clb_voice_is_never_listed_nor_spoken():
    assert "clb" not in {v.name for v in rhvoice.installed_voices()} | {v.speaker for v in rhvoice.installed_voices()}
    clb = dataclasses.replace(_voice("slt"), name="clb", speaker="clb")
    with pytest.raises(WavTokenizerError, match="clb"):
        rhvoice.speak(ENGLISH, clb)


def test_cmu_arctic_voices_keep_their_arctic_speaker_names_and_one_person_is_one_speaker():
    assert _voice("slt").speaker == "slt" and _voice("slt").sex == "female"
    assert _voice("bdl").speaker == "bdl" and _voice("bdl").sex == "male"
    assert _voice("alan").speaker == "awb"
    assert _voice("evgeniy-eng").speaker == _voice("evgeniy-rus").speaker == "evgeniy"
    assert _voice("evgeniy-eng").language == "en" and _voice("evgeniy-rus").language == "ru"


@pytest.mark.parametrize("name, text", [("slt", ENGLISH), ("aleksandr", RUSSIAN)])
def test_an_english_and_a_russian_voice_speak_a_sentence_into_non_silent_audio_of_plausible_duration(name, text):
    speech = _speak(name, text)
    duration = len(speech.audio) / speech.sampling_rate
    assert speech.sampling_rate == 24000 and speech.audio.dtype == np.int16 and speech.audio.ndim == 1
    assert 2.0 < duration < 8.0, duration
    assert np.sqrt(np.mean(speech.float_audio() ** 2)) > 0.01
    assert speech.words == [] and speech.phones == []


def test_speed_one_and_a_half_gives_clearly_shorter_audio_than_speed_one():
    normal, fast = _speak("slt", ENGLISH), _speak("slt", ENGLISH, speed=1.5)
    assert len(fast.audio) < 0.75 * len(normal.audio)


def test_a_pitch_shift_moves_the_median_f0_in_its_direction():
    own = _median_f0(_speak("bdl", ENGLISH))
    up, down = _median_f0(_speak("bdl", ENGLISH, pitch=4.0)), _median_f0(_speak("bdl", ENGLISH, pitch=-4.0))
    assert up > 1.15 * own and down < own / 1.15, (down, own, up)  # 4 semitones is a factor of 1.26


def test_the_same_call_twice_gives_identical_samples():
    first = rhvoice.speak(ENGLISH, _voice("alan"), speed=1.1, pitch=1.0)
    second = rhvoice.speak(ENGLISH, _voice("alan"), speed=1.1, pitch=1.0, seed=7)
    assert first.sampling_rate == second.sampling_rate and np.array_equal(first.audio, second.audio)


def test_a_voice_that_is_not_installed_raises_an_error_naming_it():
    ghost = dataclasses.replace(_voice("slt"), name="no-such-voice", speaker="no-such-voice")
    with pytest.raises(WavTokenizerError, match="no-such-voice"):
        rhvoice.speak(ENGLISH, ghost)


def test_a_failing_program_raises_an_error_naming_the_voice(monkeypatch):
    monkeypatch.setattr(rhvoice, "PROGRAM", "false")
    with pytest.raises(WavTokenizerError, match="rhvoice voice slt"):
        rhvoice.speak(ENGLISH, _voice("slt"))


def test_text_in_another_alphabet_is_refused_rather_than_skipped_in_silence():
    with pytest.raises(WavTokenizerError, match="slt.*not latin"):
        rhvoice.speak("Hello. " + RUSSIAN, _voice("slt"))
    with pytest.raises(WavTokenizerError, match="nothing to say"):
        rhvoice.speak(" ... 123 ", _voice("slt"))


@pytest.mark.parametrize("speed, pitch", [(0.4, 0.0), (2.5, 0.0), (1.0, 13.0), (1.0, -13.0), (float("nan"), 0.0)])
def test_speed_and_pitch_beyond_what_rhvoice_can_speak_are_refused(speed, pitch):
    with pytest.raises(WavTokenizerError, match="slt"):
        rhvoice.speak(ENGLISH, _voice("slt"), speed=speed, pitch=pitch)
