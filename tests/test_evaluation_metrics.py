"""Evaluation metrics on cases built to expose their loopholes: the spectral distances' floor and bandwidth, the
phase error of silence, DistillMOS on short clips, and the hand-checkable parts of the pitch scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from wavtokenizer_hf.evaluation.pitch import _mcc, pitch_agreement, track_pitch
from wavtokenizer_hf.evaluation.quality import has
from wavtokenizer_hf.evaluation.runner import EVAL_RATE
from wavtokenizer_hf.evaluation.spectral import mel_distance, multi_resolution_stft_distance, phase_advance_error

from conftest import ROOT


@pytest.fixture(scope="module")
def arctic() -> torch.Tensor:
    """The ARCTIC recording at 24 kHz: a 16 kHz recording, so (almost) nothing above 8 kHz."""
    wave, rate = sf.read(ROOT / "assets" / "audio" / "arctic_a0007.wav", dtype="float32")
    assert rate == 16000
    return torchaudio.functional.resample(torch.from_numpy(wave), rate, EVAL_RATE)


def white(samples: int, dbfs: float, seed: int = 0) -> torch.Tensor:
    """White noise at an RMS of `dbfs` relative to full scale (1.0)."""
    noise = torch.randn(samples, generator=torch.Generator().manual_seed(seed))
    return noise / noise.pow(2).mean().sqrt() * 10 ** (dbfs / 20)


def glide(f0: float, cents: float, seconds: float = 1.0) -> torch.Tensor:
    """29 harmonics (amplitudes 1/k) of an F0 rising from `f0` by `cents` at a constant rate in cents."""
    t = torch.arange(int(seconds * EVAL_RATE), dtype=torch.float64) / EVAL_RATE
    if cents:
        rate = cents / seconds * math.log(2) / 1200  # d/dt of ln f(t)
        phase = 2 * math.pi * f0 * torch.expm1(rate * t) / rate
    else:
        phase = 2 * math.pi * f0 * t
    return (0.1 * sum(torch.sin(k * phase + k) / k for k in range(1, 30))).float()


# --- mel and STFT distances: a floor relative to the reference, within the reference's bandwidth -------------------

def test_inaudible_noise_added_to_a_16_khz_recording_is_near_zero_in_mel_and_stft_distance(arctic):
    noisy = arctic + white(arctic.numel(), -70)  # 48 dB under the speech's RMS, at the recording's own noise floor
    # measured: 0.029 mel and 0.009 STFT; with both spectra clamped at an absolute 1e-5 it was 0.40 and 1.12
    assert mel_distance(arctic, noisy, EVAL_RATE) < 0.05
    assert multi_resolution_stft_distance(arctic, noisy) < 0.05


def test_a_low_passed_or_audibly_noisy_copy_still_scores_well_above_inaudible_noise(arctic):
    inaudible = arctic + white(arctic.numel(), -70)
    low_passed = torchaudio.functional.lowpass_biquad(arctic, EVAL_RATE, 4000.0)
    for degraded, at_least in ((low_passed, 0.1), (arctic + white(arctic.numel(), -50), 0.15),
                               (arctic + white(arctic.numel(), -40), 0.5)):
        # measured: mel 0.14, 0.68, 1.29; STFT 0.11, 0.18, 0.87; inaudible noise: 0.03, 0.01
        assert mel_distance(arctic, degraded, EVAL_RATE) > max(at_least, 3 * mel_distance(arctic, inaudible, EVAL_RATE))
        assert multi_resolution_stft_distance(arctic, degraded) > max(
            at_least, 3 * multi_resolution_stft_distance(arctic, inaudible))


@pytest.fixture(scope="module")
def full_and_narrow() -> tuple[torch.Tensor, torch.Tensor]:
    """White noise over the whole 0-12 kHz, and the same noise with nothing above 8 kHz (faded in and out, so that
    the reflect-padded edge frames add no broadband click)."""
    noise = white(EVAL_RATE, -20, seed=2)
    spectrum = torch.fft.rfft(noise)
    spectrum[int(8000 / (EVAL_RATE / 2) * (spectrum.numel() - 1)):] = 0
    narrow = torch.fft.irfft(spectrum, noise.numel())
    fade = torch.ones(noise.numel())
    ramp = torch.hann_window(EVAL_RATE // 5)[: EVAL_RATE // 10]
    fade[: ramp.numel()], fade[-ramp.numel():] = ramp, ramp.flip(0)
    return noise * fade, narrow * fade


def test_an_estimate_missing_a_band_the_reference_has_is_penalised_and_one_adding_a_band_it_lacks_is_not(
        full_and_narrow):
    full, narrow = full_and_narrow
    # the reference's bandwidth counts: its top third of mel bands, empty in the estimate, sits at the floor there
    assert mel_distance(full, narrow, EVAL_RATE) > 0.5  # measured 0.76
    assert multi_resolution_stft_distance(full, narrow) > 2.0  # measured 2.31
    # a band the reference lacks is left out (only the band straddling 8 kHz differs)
    assert mel_distance(narrow, full, EVAL_RATE) < 0.05  # measured 0.012; 0.78 had it counted
    assert multi_resolution_stft_distance(narrow, full) < 0.8  # measured 0.76, of which ~0.7 spectral convergence


def test_an_empty_band_of_the_reference_does_not_dilute_the_distance(full_and_narrow):
    _, narrow = full_and_narrow
    assert mel_distance(narrow, 2 * narrow, EVAL_RATE) == pytest.approx(math.log(2), abs=0.005)  # measured 0.692
    assert multi_resolution_stft_distance(narrow, 2 * narrow) == pytest.approx(1 + math.log(2), abs=0.01)


def test_a_silent_reference_has_no_log_spectral_distance(arctic):
    silence = torch.zeros(EVAL_RATE)
    assert math.isnan(mel_distance(silence, arctic[:EVAL_RATE], EVAL_RATE))
    assert math.isnan(multi_resolution_stft_distance(silence, arctic[:EVAL_RATE]))


# --- phase advance error -------------------------------------------------------------------------------------------

def test_a_silent_output_has_the_maximal_phase_advance_error_worse_than_noise(arctic):
    noise = phase_advance_error(arctic, white(arctic.numel(), -26))  # measured 1.06
    silence = phase_advance_error(arctic, torch.zeros_like(arctic))
    assert silence == pytest.approx(math.pi) and silence > noise  # it was 0.75 (the signs of floating-point zeros)
    assert phase_advance_error(arctic, arctic) == pytest.approx(0.0, abs=1e-9)
    vowel = glide(140, 400)
    half = torch.cat([vowel[: EVAL_RATE // 2], torch.zeros(EVAL_RATE // 2)])
    noise = phase_advance_error(vowel, white(vowel.numel(), -26))  # measured 1.17
    # the second half counts pi, the first 0: half the reference's weight each (it was 0.40)
    assert phase_advance_error(vowel, half) == pytest.approx(math.pi / 2, abs=0.1)
    assert phase_advance_error(vowel, half) > noise
    delay = 37
    delayed = torch.cat([torch.zeros(delay), vowel[:-delay]])
    assert phase_advance_error(vowel[delay:], delayed[delay:]) < 0.05
    assert phase_advance_error(vowel, vowel) == pytest.approx(0.0, abs=1e-9)


def test_phase_advance_error_is_weighted_by_the_reference_not_by_the_output():
    """Loud noise where the reference is 60 dB quieter hardly counts; the reference's loud half is exact."""
    vowel = glide(140, 400)
    reference = torch.cat([vowel[: EVAL_RATE // 2], 1e-3 * vowel[EVAL_RATE // 2:]])
    estimate = torch.cat([vowel[: EVAL_RATE // 2], white(EVAL_RATE // 2, -20)])
    assert phase_advance_error(reference, estimate) < 0.05  # measured 0.005; 0.81 weighted by the output


# --- DistillMOS on clips shorter than its window ---------------------------------------------------------------------

DISTILLMOS_WINDOW = 122880  # 7.68 s at 16 kHz: what the model scores at once, zero-padding anything shorter
needs_distillmos = pytest.mark.skipif(not has("distillmos"), reason="distillmos is not installed")


def _model_score(audio_16k: torch.Tensor) -> float:
    from wavtokenizer_hf.evaluation import quality

    with torch.no_grad():
        return float(quality._MOS_MODEL(audio_16k[None]).squeeze())


@needs_distillmos
def test_distillmos_scores_a_short_clip_tiled_to_its_window_not_zero_padded(arctic):
    from wavtokenizer_hf.evaluation import quality

    clip = arctic[EVAL_RATE: 2 * EVAL_RATE]  # 1 s of speech
    score = quality.mos(clip, EVAL_RATE)
    at_16k = torchaudio.functional.resample(clip, EVAL_RATE, 16000)
    tiled = at_16k.repeat(math.ceil(DISTILLMOS_WINDOW / at_16k.numel()))[:DISTILLMOS_WINDOW]
    assert score == pytest.approx(_model_score(tiled), abs=1e-5)
    assert abs(score - _model_score(at_16k)) > 0.3  # measured 4.50 tiled, 3.89 zero-padded to the window
    longer = torch.cat([arctic, arctic, arctic])  # 12 s: scored as it is (the model averages its windows)
    assert quality.mos(longer, EVAL_RATE) == pytest.approx(
        _model_score(torchaudio.functional.resample(longer, EVAL_RATE, 16000)), abs=1e-5)


@needs_distillmos
def test_distillmos_still_scores_digital_silence_for_the_runner_to_flag():
    from wavtokenizer_hf.evaluation import quality

    score = quality.mos(torch.zeros(EVAL_RATE), EVAL_RATE)
    assert score is not None and 1.0 <= score <= 5.0  # measured 1.97: the runner flags the output "silent"


# --- pitch ---------------------------------------------------------------------------------------------------------

def test_matthews_correlation_of_known_voicing_tracks():
    truth = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    guess = np.array([1, 0, 0, 1, 1, 0], dtype=bool)  # tp 2, tn 2, fp 1, fn 1
    assert _mcc(truth, guess) == pytest.approx((2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3))
    assert _mcc(truth, truth) == pytest.approx(1.0) and _mcc(truth, ~truth) == pytest.approx(-1.0)
    assert _mcc(truth, np.ones(6, dtype=bool)) == 0.0


def test_voicing_correlation_of_an_output_that_stops_halfway():
    tone, silence = glide(180, 0), torch.zeros(EVAL_RATE // 2)
    reference = torch.cat([tone, silence])  # voiced 1 s, then 0.5 s unvoiced
    estimate = torch.cat([tone[: EVAL_RATE // 2], silence, silence])  # voiced for the first 0.5 s only
    _, v_ref = track_pitch(reference, EVAL_RATE)
    _, v_est = track_pitch(estimate, EVAL_RATE)
    mcc = pitch_agreement(reference, estimate, EVAL_RATE)["vuv_mcc"]
    assert mcc == pytest.approx(np.corrcoef(v_ref, v_est)[0, 1])  # MCC is Pearson's r of the boolean tracks
    assert mcc == pytest.approx(0.5, abs=0.05)  # tp 50, fn 50, tn 50, fp 0: 2500 / sqrt(50 * 100 * 100 * 50)


def test_a_tone_70_cents_off_is_a_gross_error_and_40_cents_off_is_not():
    reference = glide(180, 0)
    off_70 = pitch_agreement(reference, glide(180 * 2 ** (70 / 1200), 0), EVAL_RATE)
    assert off_70["f0_gross_error"] > 0.95
    assert off_70["f0_rmse_cents"] == pytest.approx(70, abs=1)
    off_40 = pitch_agreement(reference, glide(180 * 2 ** (40 / 1200), 0), EVAL_RATE)
    assert off_40["f0_gross_error"] < 0.05 and off_40["f0_fine_rmse_cents"] == pytest.approx(40, abs=1)


def test_f0_spread_ratio_of_two_glides_is_the_ratio_of_their_depths():
    """A glide at a constant rate in cents has a standard deviation of depth / sqrt(12) cents."""
    reference = glide(150, 400)
    assert pitch_agreement(reference, glide(150, 200), EVAL_RATE)["f0_spread_ratio"] == pytest.approx(0.5, abs=0.03)
    assert pitch_agreement(reference, glide(150, 600), EVAL_RATE)["f0_spread_ratio"] == pytest.approx(1.5, abs=0.05)
    assert pitch_agreement(reference, reference, EVAL_RATE)["f0_spread_ratio"] == 1.0
