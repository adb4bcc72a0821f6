"""KDE education recordings (klettres-data, ktuberling-data) as corpus voices: reserved speakers never listed or read,
seeded utterances of 3-8.5 s strung from real clips."""

from __future__ import annotations

import numpy as np
import pytest

from wavtokenizer_hf.corpus import kde_recordings as kde
from wavtokenizer_hf.corpus.voices import RESERVED, SEXES, Voice, is_reserved
from wavtokenizer_hf.errors import WavTokenizerError

from conftest import write_tone

needs_data = pytest.mark.skipif(not kde.available(), reason="klettres-data / ktuberling-data not installed "
                                                           "(apt-get install klettres-data ktuberling-data)")


def _voice(backend: str, name: str) -> Voice:
    return Voice(backend=backend, name=name, speaker=f"{backend}-{name}", sex="unknown", language="xx",
                 licence="GPL-2+", timed=False)


@pytest.fixture(scope="module")
def voices() -> list[Voice]:
    return kde.installed_voices()


def _rms_db(audio: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(audio, dtype=np.float64))) + 1e-12)


@needs_data
def test_reserved_speakers_never_listed_and_never_read(voices):
    assert voices
    listed = {(v.backend, v.name) for v in voices}
    for backend, name in RESERVED:
        if backend in kde.BACKENDS:
            assert (backend, name) not in listed
            with pytest.raises(WavTokenizerError, match="reserved"):
                kde.clips(_voice(backend, name))
    assert not [v for v in voices if is_reserved(v.backend, v.name) or is_reserved(v.backend, v.name.split("-")[0])]
    reserved_dirs = {(kde._root(b) / n).resolve() for b, n in RESERVED if b in kde.BACKENDS}
    for voice in voices:
        for _, path in kde.clips(voice):
            assert not any(folder in path.parents for folder in reserved_dirs), path


@needs_data
def test_every_voice_is_described(voices):
    keys = [v.key for v in voices]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for voice in voices:
        assert voice.backend in kde.BACKENDS and voice.speaker == f"{voice.backend}-{voice.name}"
        assert voice.sex in SEXES and voice.language and voice.licence.startswith("GPL-2+")
        assert not voice.timed and not voice.pitch_shift
        table = kde.clips(voice)
        assert table and all(text.strip() for text, _ in table)
        assert len({path for _, path in table}) == len(table)
        assert kde.total_seconds(voice) > 0
    names = {(v.backend, v.name) for v in voices}
    assert not [n for n in names if "@" in n[1]] and not names & set(kde._EXCLUDED)  # copies of sr; nn, ru
    assert ("klettres", "pt_BR") not in names or next(v for v in voices if v.name == "pt_BR").language == "pt-br"


@needs_data
def test_unknown_voice_and_backend_are_refused():
    with pytest.raises(WavTokenizerError, match="not an installed voice"):
        kde.clips(_voice("klettres", "xx"))
    with pytest.raises(WavTokenizerError, match="backend"):
        kde.clips(_voice("espeak", "en"))


@needs_data
def test_utterance_is_seeded_speech_of_plausible_length(voices):
    for voice in (voices[0], [v for v in voices if v.backend == "ktuberling"][0]):
        text, speech = kde.utterance(voice, seed=5)
        again_text, again = kde.utterance(voice, seed=5)
        other_text, other = kde.utterance(voice, seed=6)
        audio = speech.float_audio()
        assert speech.sampling_rate == kde.SAMPLING_RATE and audio.dtype == np.float32 and audio.ndim == 1
        assert 3.0 <= len(audio) / speech.sampling_rate <= 8.5
        assert _rms_db(audio) > -45 and np.abs(audio).max() <= 1.0
        assert text.strip() and speech.words == [] and speech.phones == []
        assert len(speech.detail.split()) == len(text.split(" "))  # the clips used, one per text
        assert again_text == text and np.array_equal(again.audio, audio)
        assert other_text != text or not np.array_equal(other.audio[:len(audio)], audio[:len(other.audio)])
        assert np.array_equal(kde.speak("ignored", voice, seed=5).audio, audio)
        clip_text = kde.clips(voice)[0][0]
        assert len(kde.speak(clip_text, voice).audio) < len(audio)  # a clip text: that clip alone


def test_unreadable_clips_are_skipped_with_a_warning(tmp_path, monkeypatch, capsys):
    good = [write_tone(tmp_path / f"tone{i}.wav", seconds=0.8, rate=44100, freq=180.0 + 40 * i) for i in range(3)]
    bad = tmp_path / "broken.ogg"
    bad.write_bytes(b"not audio at all")
    voice = _voice("klettres", "test")
    monkeypatch.setattr(kde, "clips", lambda v: [("broken", bad)] + [(f"t{i}", p) for i, p in enumerate(good)])
    speech = kde.speak("broken", voice, seed=1)  # the one clip saying it cannot be read: an utterance instead
    assert "broken.ogg" in capsys.readouterr().err
    text, again = kde.utterance(voice, seed=1)
    assert "broken" not in text.split() and 3.0 <= len(again.audio) / again.sampling_rate <= 8.5
    assert np.array_equal(speech.audio, again.audio)
    monkeypatch.setattr(kde, "clips", lambda v: [("broken", bad)])
    with pytest.raises(WavTokenizerError, match="can be read"):
        kde.utterance(voice, seed=1)
