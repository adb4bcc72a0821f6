"""The measures of benchmarks/spectral_balance.py on signals whose answer is known."""

from __future__ import annotations

import sys

import numpy as np

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import spectral_balance as sb  # noqa: E402


def test_a_tone_s_power_lands_in_its_own_band_and_a_gain_shifts_every_band_alike():
    t = np.arange(sb.RATE) / sb.RATE
    tone = 0.5 * np.sin(2 * np.pi * 3000 * t)
    levels = sb.band_levels(tone)
    assert int(np.argmax(levels)) == sb.EDGES.index(2000)  # the 2-4 kHz band
    assert np.allclose(sb.band_levels(tone * 0.1)[4] - levels[4], -20.0, atol=0.01)


def test_a_voice_like_tone_is_periodic_and_noise_is_not():
    t = np.arange(sb.RATE) / sb.RATE
    voice = np.sin(2 * np.pi * 150 * t) + 0.5 * np.sin(2 * np.pi * 300 * t)
    noise = np.random.default_rng(0).standard_normal(sb.RATE)
    centres = np.arange(2000, 20000, 1000)
    assert sb.periodicity(voice, centres).min() > 0.98
    assert sb.periodicity(noise, centres).max() < 0.3
    murmur = np.convolve(noise, np.ones(40) / 40, "same")  # smooth but aperiodic: alike only at lags under a pitch's
    assert sb.periodicity(murmur, centres).max() < 0.6
    assert len(sb.periodicity(voice, np.array([10, sb.RATE - 10]))) == 0  # frames past either end are skipped
