"""Exact batched inference: every item of a padded batch gets what it gets alone, and equals the stock model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel

from wavtokenizer_hf.inference import FastWavTokenizer

LENGTHS = [31250, 20000, 5000, 1281, 700, 640, 330, 321, 24000]  # mixed, incl. 2-frame items


@pytest.fixture(scope="module")
def models(converted_dir):
    model = AutoModel.from_pretrained(converted_dir).eval()
    return model, FastWavTokenizer(model)


@pytest.fixture(scope="module")
def waves():
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(n, generator=generator) * 0.2 for n in LENGTHS]


def test_batched_encode_equals_single_item_encode(models, waves):
    model, fast = models
    with torch.no_grad():
        single = [model.encode(w[None, None]).audio_codes[0, 0] for w in waves]
    batched = fast.encode_list(waves)
    for expected, got in zip(single, batched):
        assert torch.equal(expected, got)


@pytest.mark.parametrize("tile_seconds", [0.1, 0.35])
def test_tiled_encoder_convolutions_equal_whole_clip(models, waves, tile_seconds):
    """Tiles of a few frames (many tile edges per item) give the stock model's codes and the untiled latents."""
    model, _ = models
    tiled = FastWavTokenizer(model, tile_seconds=tile_seconds)
    whole = FastWavTokenizer(model, tile_seconds=None)
    assert tiled.tile_frames < max(LENGTHS) // tiled.conv_stride  # several tiles for the long items
    with torch.no_grad():
        single = [model.encode(w[None, None]).audio_codes[0, 0] for w in waves]
    for expected, got in zip(single, tiled.encode_list(waves)):
        assert torch.equal(expected, got)
    wave = waves[0]
    reference = whole._run(wave[None, None], torch.tensor([wave.numel()]), whole.conv_plan)[0][0]
    scale = float(reference.abs().max())
    assert float((tiled._tiled_convs(wave) - reference).abs().max()) < 1e-6 * scale  # round-off only
    tiled.halo_frames = 0  # no real audio around each tile: its edges see the tile's own padding
    assert float((tiled._tiled_convs(wave) - reference).abs().max()) > 1e-4 * scale


def test_tile_length_is_checked(models):
    for bad in (0, -1.0, "fast"):
        with pytest.raises(ValueError, match="tile_seconds"):
            FastWavTokenizer(models[0], tile_seconds=bad)


def test_the_stock_model_leaks_padding_into_short_items(models, waves):
    model, _ = models
    batch = torch.zeros(len(waves), max(LENGTHS))
    for i, w in enumerate(waves):
        batch[i, : w.numel()] = w
    with torch.no_grad():
        stock = model.encode(batch[:, None]).audio_codes[:, 0]
        alone = model.encode(waves[4][None, None]).audio_codes[0, 0]
    assert not torch.equal(stock[4, : alone.numel()], alone)  # what this module fixes


def test_batched_decode_equals_single_item_decode(models, waves):
    model, fast = models
    codes = fast.encode_list(waves)
    with torch.no_grad():
        single = [model.decode(c[None, None]).audio_values[0, 0] for c in codes]
    for expected, got in zip(single, fast.decode_list(codes)):
        assert expected.shape == got.shape
        assert float((expected - got).abs().max()) <= 1e-4


def test_fixture_codes_through_the_fast_path(models, fixture_array):
    _, fast = models
    wav = torch.from_numpy(fixture_array("input_wav"))
    codes = fast.encode_list([wav[0]])[0]
    assert torch.equal(codes, torch.from_numpy(fixture_array("codes"))[0, 0])
    audio = fast.decode_list([codes])[0]
    assert float((audio - torch.from_numpy(fixture_array("audio"))[0]).abs().max()) <= 1e-5


def test_windowed_long_audio_agrees_with_whole_file(models):
    from wavtokenizer_hf.inference import decode_windowed, encode_windowed

    _, fast = models
    generator = torch.Generator().manual_seed(3)
    t = torch.arange(24000 * 12) / 24000
    audio = 0.3 * torch.sin(2 * torch.pi * 180 * t * (1 + 0.1 * torch.sin(t))) + 0.05 * torch.randn(t.shape, generator=generator)
    whole = fast.encode_list([audio])[0]
    windowed = encode_windowed(fast, audio, window_seconds=2.0, context_seconds=1.0)
    assert windowed.shape == whole.shape
    assert float((windowed == whole).float().mean()) >= 0.995
    decoded = decode_windowed(fast, whole, window_seconds=2.0, context_seconds=1.0)
    assert decoded.numel() == whole.numel() * fast.hop_length


def test_low_precision_is_an_explicit_option(models, waves):
    _, fast = models
    exact = fast.encode_list(waves[:3])
    assert all(torch.equal(a, b) for a, b in zip(exact, fast.encode_list(waves[:3], "fp32")))
    for precision in ("bf16", "bf16-all"):
        codes = fast.encode_list(waves[:3], precision)
        assert [c.shape for c in codes] == [c.shape for c in exact]
        assert all(0 <= int(c.min()) and int(c.max()) < fast.config.codebook_size for c in codes)
    with pytest.raises(ValueError, match="accepted: fp32"):
        fast.encode_list(waves[:1], "int8")
