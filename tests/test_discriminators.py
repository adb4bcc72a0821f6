"""The discriminators and their losses are the authors' (docs/training.md; their decoder/discriminators.py,
discriminator_dac.py and loss.py): what each sub-discriminator sees, which feature maps it returns, how its losses
combine."""

from __future__ import annotations

import pytest
import torch

from wavtokenizer_hf.training.discriminators import (
    DACDiscriminator,
    MultiPeriodDiscriminator,
    MultiResolutionDiscriminator,
    PeriodDiscriminator,
    ResolutionDiscriminator,
)
from wavtokenizer_hf.training.losses import discriminator_loss, feature_matching, generator_adversarial

SMALL = (4, 4, 4, 4, 4)


def audio(batch: int = 2, length: int = 4800, seed: int = 0) -> torch.Tensor:
    return 0.3 * torch.randn(batch, length, generator=torch.Generator().manual_seed(seed))


def first_input(module: torch.nn.Module, conv: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = conv.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    module(x)
    handle.remove()
    return seen[0]


def test_the_resolution_discriminator_sees_frequency_by_time_magnitudes_with_a_rectangular_window():
    disc = ResolutionDiscriminator(512, 128, channels=4)
    x = audio()
    expected = torch.stft(x, 512, 128, window=torch.ones(512), return_complex=True).abs()[:, None]
    seen = first_input(disc, disc.convs[0], x)
    assert seen.shape == (2, 1, 257, x.shape[-1] // 128 + 1)  # (B, 1, bins, frames)
    torch.testing.assert_close(seen, expected)


def test_the_multi_resolution_family_uses_the_authors_three_resolutions():
    family = MultiResolutionDiscriminator(channels=4)
    assert [(d.n_fft, d.hop) for d in family.discriminators] == [(1024, 256), (2048, 512), (512, 128)]


@pytest.mark.parametrize("length,vocos_rows,dac_rows", [(30, 15, 16), (31, 16, 16)])
def test_period_members_pad_as_their_families_do(length, vocos_rows, dac_rows):
    x = audio(length=length)
    vocos, dac = PeriodDiscriminator(2, SMALL), PeriodDiscriminator(2, SMALL, dac_variant=True)
    assert first_input(vocos, vocos.convs[0], x).shape[2] == vocos_rows  # to a multiple of the period only
    assert first_input(dac, dac.convs[0], x).shape[2] == dac_rows  # always (a whole period when divisible)


def test_vocos_period_members_leave_the_first_layer_out_of_their_feature_maps_and_dac_ones_keep_it():
    x = audio()
    _, vocos_features = PeriodDiscriminator(3, SMALL)(x)
    _, dac_features = PeriodDiscriminator(3, SMALL, dac_variant=True)(x)
    assert len(vocos_features) == 5 and len(dac_features) == 6  # 5 convs + post
    assert len(MultiPeriodDiscriminator(channels=SMALL).discriminators) == 5


def test_the_dac_family_has_five_period_and_three_band_members_on_dc_free_peak_normalised_audio():
    family = DACDiscriminator(period_channels=SMALL, band_channels=4)
    periods = [d.period for d in family.discriminators if isinstance(d, PeriodDiscriminator)]
    windows = [d.window for d in family.discriminators if not isinstance(d, PeriodDiscriminator)]
    assert periods == [2, 3, 5, 7, 11] and windows == [2048, 1024, 512]
    x = audio()
    logits, _ = family(x)
    shifted, _ = family(3.0 * x + 0.2)  # the same audio, louder, with a DC offset
    assert len(logits) == 8
    for a, b in zip(logits, shifted):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_band_members_see_the_rectangular_window_complex_spectrum_band_by_band():
    family = DACDiscriminator(period_channels=SMALL, band_channels=4)
    band = family.discriminators[-1]  # window 512
    x = audio()
    centred = x - x.mean(-1, keepdim=True)
    normalised = 0.8 * centred / (centred.abs().amax(-1, keepdim=True) + 1e-9)
    spectrum = torch.stft(normalised, 512, 128, window=torch.ones(512), return_complex=True)
    expected = torch.view_as_real(spectrum).permute(0, 3, 2, 1)  # (B, 2, frames, bins)
    lo, hi = band.edges[2]
    seen = first_input(family, band.bands[2][0], x)
    torch.testing.assert_close(seen, expected[..., lo:hi], atol=1e-5, rtol=1e-4)


def test_the_dac_family_uses_least_squares_summed_over_members_and_the_others_hinge_averaged():
    zeros, ones = [torch.zeros(2, 3)] * 8, [torch.ones(2, 3)] * 8
    assert float(discriminator_loss("dac", real=ones, fake=zeros)) == 0.0
    assert float(discriminator_loss("dac", real=zeros, fake=ones)) == 16.0  # (1 + 1) x 8 members
    assert float(generator_adversarial("dac", zeros)) == 8.0
    assert float(generator_adversarial("dac", [torch.full((2, 3), 3.0)] * 8)) == 32.0  # squared: hinge would be 0
    assert float(generator_adversarial("mpd", zeros[:5])) == 1.0  # mean of relu(1 - 0)
    assert float(generator_adversarial("mpd", [torch.full((2, 3), 3.0)] * 5)) == 0.0
    assert float(discriminator_loss("mrd", real=zeros[:3], fake=zeros[:3])) == 2.0
    assert float(discriminator_loss("mrd", real=[torch.full((2, 3), 2.0)] * 3, fake=[torch.full((2, 3), -2.0)] * 3)) == 0.0


def test_dac_feature_matching_skips_the_logits_and_sums_over_members():
    real = [[torch.zeros(2, 4), torch.zeros(2, 1)] for _ in range(8)]
    logits_differ = [[torch.zeros(2, 4), torch.ones(2, 1)] for _ in range(8)]
    features_differ = [[torch.ones(2, 4), torch.zeros(2, 1)] for _ in range(8)]
    assert float(feature_matching("dac", real, logits_differ)) == 0.0
    assert float(feature_matching("dac", real, features_differ)) == 8.0
    assert float(feature_matching("mpd", real[:5], logits_differ[:5])) == 1.0  # every map, averaged over members
    assert float(feature_matching("mpd", real[:5], features_differ[:5])) == 1.0
