"""Exact batched inference: every item of a padded batch gets what it gets alone, and equals the stock model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel

from conftest import PEAK_RSS_MB
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
    reference = fast.decode_list([whole])[0]
    assert decoded.shape == reference.shape
    # the attention is global, so windows differ from the whole-sequence decode (this untrained fixture: 16%); zeros
    # or misplaced windows are off by ~100% or more
    assert float((decoded - reference).norm() / reference.norm()) < 0.3  # 0.16 measured on this fixture


def test_low_precision_is_an_explicit_option(models, waves):
    _, fast = models
    exact = fast.encode_list(waves[:3])
    assert all(torch.equal(a, b) for a, b in zip(exact, fast.encode_list(waves[:3], "fp32")))
    agreement = {}
    for precision in ("bf16", "bf16-all"):
        codes = fast.encode_list(waves[:3], precision)
        assert [c.shape for c in codes] == [c.shape for c in exact]
        assert all(0 <= int(c.min()) and int(c.max()) < fast.config.codebook_size for c in codes)
        agreement[precision] = float((torch.cat(codes) == torch.cat(exact)).float().mean())
    # the option is honoured: this fixture's latents sit close to several codes, so bf16 flips some codes and a
    # search in bf16 flips many more (BENCHMARKS.md explains why)
    assert agreement["bf16-all"] < agreement["bf16"] < 1.0
    with pytest.raises(ValueError, match="accepted: fp32"):
        fast.encode_list(waves[:1], "int8")


# --- long audio: streaming-exact encode ----------------------------------------------------------------------------

def sustained_chord(seconds: float, rate: int = 24000) -> torch.Tensor:
    """Music-like input: a held chord with slow tremolo and a note change, where an LSTM carries state for long."""
    t = torch.arange(int(seconds * rate)) / rate
    chord = sum(0.1 * torch.sin(2 * torch.pi * f * t) for f in (220.0, 277.2, 329.6))
    melody = 0.08 * torch.sin(2 * torch.pi * torch.where(t < seconds / 2, 440.0, 493.9) * t)
    noise = 0.005 * torch.randn(t.shape, generator=torch.Generator().manual_seed(1))
    return (chord + melody) * (1 + 0.3 * torch.sin(2 * torch.pi * 0.2 * t)) + noise


@pytest.fixture(scope="module")
def trained():
    from wavtokenizer_hf.default_codec import default_codec_dir

    model = AutoModel.from_pretrained(default_codec_dir()).eval()
    return model, FastWavTokenizer(model)


@pytest.fixture(scope="module")
def speech():
    import soundfile as sf

    from conftest import ROOT
    from wavtokenizer_hf.audio_io import resample

    wave, rate = sf.read(ROOT / "assets" / "audio" / "arctic_a0007.wav", dtype="float32")
    return resample(torch.from_numpy(wave)[None], rate, 24000)[0].repeat(3)  # 12 s


@pytest.mark.parametrize("chunk_seconds", [0.37, 1.3])
@pytest.mark.parametrize("kind", ["music", "speech"])
def test_streaming_encode_gives_every_whole_file_code(trained, speech, chunk_seconds, kind):
    from wavtokenizer_hf.long_audio import StreamingEncoder

    model, fast = trained
    audio = sustained_chord(12.0) if kind == "music" else speech
    with torch.no_grad():
        whole = model.encode(audio[None, None]).audio_codes[0, 0]
    streamed = StreamingEncoder(fast, chunk_seconds).encode(audio)  # chunk edges fall mid-note and mid-word
    assert torch.equal(streamed, whole)


def test_streaming_encode_memory_does_not_grow_with_the_file(trained, monkeypatch):
    from wavtokenizer_hf.long_audio import StreamingEncoder

    _, fast = trained
    largest = []
    real_conv = torch.nn.functional.conv1d

    def recording(x, *args, **kwargs):
        largest[-1] = max(largest[-1], x.numel())
        return real_conv(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv1d", recording)
    for seconds in (6.0, 24.0):
        largest.append(0)
        StreamingEncoder(fast, chunk_seconds=1.0).encode(sustained_chord(seconds))
    assert largest[0] == largest[1]  # the biggest activation is a chunk's, whatever the length


def test_long_inputs_take_the_streaming_path_from_codec_and_datasets(trained, monkeypatch, converted_dir):
    from wavtokenizer_hf import long_audio as streaming
    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.default_codec import default_codec_dir
    from wavtokenizer_hf.tokenization import DatasetTokenizer

    calls = []
    real = streaming.StreamingEncoder.encode
    monkeypatch.setattr(streaming, "STREAMING_THRESHOLD_SECONDS", 2.0)
    monkeypatch.setattr("wavtokenizer_hf.codec.STREAMING_THRESHOLD_SECONDS", 2.0)
    monkeypatch.setattr(streaming.StreamingEncoder, "encode", lambda self, w: calls.append(w.numel()) or real(self, w))
    audio = sustained_chord(5.0)
    model, _ = trained
    with torch.no_grad():
        whole = model.encode(audio[None, None]).audio_codes[0, 0]
    codes = Codec.from_pretrained(default_codec_dir()).encode(audio, 24000).audio_codes[0]
    assert calls == [audio.numel()] and torch.equal(codes, whole)
    mapped = DatasetTokenizer(default_codec_dir())({"audio": [audio.numpy(), audio[:24000].numpy()],
                                                   "sampling_rate": [24000, 24000]})
    assert len(calls) == 2 and (mapped["audio_codes"][0] == whole.numpy()).all()


# --- long audio: exact decode in memory linear in the length -------------------------------------------------------

@pytest.mark.parametrize("chunk_frames", [37, 400])
def test_long_decode_is_within_float_rounding_of_the_stock_decode(trained, speech, chunk_frames):
    """Measured 4.5e-7 with the ConvNeXt context right and 4.4e-5 with it one frame short: the bound sits between."""
    from wavtokenizer_hf.long_audio import decode_long

    model, fast = trained
    codes = fast.encode_list([speech])[0]
    with torch.no_grad():
        stock = model.decode(codes[None, None]).audio_values[0, 0]
    audio = decode_long(fast, codes, chunk_frames=chunk_frames)
    assert audio.shape == stock.shape and float((audio - stock).abs().max()) < 2e-6


def test_long_decode_never_builds_a_frames_by_frames_attention_matrix(tmp_path):
    """13 minutes of codes (60,000 frames): a frames x frames fp32 attention matrix alone would be 14.4 GB."""
    import subprocess
    import sys

    script = f"""
import torch
from transformers import AutoModel
from wavtokenizer_hf.default_codec import default_codec_dir
from wavtokenizer_hf.inference import FastWavTokenizer
from wavtokenizer_hf.long_audio import decode_long
fast = FastWavTokenizer(AutoModel.from_pretrained(default_codec_dir()).eval())
audio = decode_long(fast, torch.randint(0, 1024, (60000,), generator=torch.Generator().manual_seed(0)))
print("RESULT", audio.numel(), {PEAK_RSS_MB})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    samples, peak_mb = map(int, result.stdout.split("RESULT")[1].split())
    # measured peaks are ~2.9-3.0 GB (the decoded audio and its windows' activations); the bound sits well above that
    # and far below the 14.4 GB that the matrix alone would take
    assert samples == 60000 * 320 and peak_mb < 6000


def test_long_code_sequences_take_the_long_decode_from_codec(monkeypatch):
    from wavtokenizer_hf import long_audio
    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.default_codec import default_codec_dir

    calls = []
    real = long_audio.decode_long
    monkeypatch.setattr("wavtokenizer_hf.codec.STREAMING_THRESHOLD_SECONDS", 2.0)
    monkeypatch.setattr("wavtokenizer_hf.codec.decode_long",
                        lambda fast, c, **options: calls.append(c.numel()) or real(fast, c, **options))
    codec = Codec.from_pretrained(default_codec_dir())
    codes = torch.randint(0, 1024, (1, 300), generator=torch.Generator().manual_seed(2))
    audio = codec.decode(codes)
    with torch.no_grad():
        stock = codec.model.decode(codes[:, None]).audio_values[:, 0]
    assert calls == [300] and float((audio - stock).abs().max()) < 1e-4


# --- low-precision decode ------------------------------------------------------------------------------------------

def _relative_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return float((estimate - reference).norm() / reference.norm())


def test_bf16_decode_changes_the_arithmetic_and_stays_within_2_percent(trained, speech):
    from wavtokenizer_hf.long_audio import decode_long

    _, fast = trained
    codes = fast.encode_list([speech])[0]
    exact = fast.decode(codes[None])[0]
    for low in (fast.decode(codes[None], precision="bf16")[0], decode_long(fast, codes, chunk_frames=200,
                                                                            precision="bf16")):
        assert not torch.equal(low, exact)  # the option is not ignored
        assert _relative_error(low, exact) < 0.02
    with pytest.raises(ValueError, match="accepted: fp32, bf16"):
        fast.decode(codes[None], precision="int8")


def test_codec_and_cli_pass_the_decode_precision_through(tmp_path):
    import soundfile as sf

    from wavtokenizer_hf.cli import main
    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.default_codec import default_codec_dir
    from wavtokenizer_hf.errors import WavTokenizerError

    codec = Codec.from_pretrained(default_codec_dir())
    codes = codec.encode(sustained_chord(2.0), 24000)
    exact, low = codec.decode(codes), codec.decode(codes, precision="bf16")
    assert not torch.equal(low, exact) and _relative_error(low, exact) < 0.02
    with pytest.raises(WavTokenizerError, match="decode precision 'fp16'"):
        codec.decode(codes, precision="fp16")
    codes.save(tmp_path / "a.codes.safetensors")
    outputs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.wav"
        assert main(["decode", str(tmp_path / "a.codes.safetensors"), str(out), "--model", str(default_codec_dir()),
                     "--precision", precision]) == 0
        outputs[precision] = torch.from_numpy(sf.read(out, dtype="float32")[0])
    assert torch.allclose(outputs["fp32"], exact[0], atol=1e-4)  # 16-bit file: compare at its resolution
    assert not torch.allclose(outputs["bf16"], exact[0], atol=1e-4)


def test_a_layer_the_exact_path_does_not_know_is_refused_not_guessed(models):
    import copy

    from torch import nn

    encoder_changed = copy.deepcopy(models[0])
    encoder_changed.encoder_model.encoder.layers.insert(1, nn.Tanh())
    with pytest.raises(ValueError, match="unexpected encoder layer Tanh"):
        FastWavTokenizer(encoder_changed)
    decoder_changed = copy.deepcopy(models[0])
    decoder_changed.backbone.pos_net.append(nn.LayerNorm(4))  # formerly treated as a GroupNorm
    with pytest.raises(ValueError, match="unexpected decoder layer LayerNorm"):
        FastWavTokenizer(decoder_changed)


def test_the_long_paths_keep_each_channel_and_the_decode_precision(monkeypatch):
    """Above the streaming threshold, `Codec` encodes each channel of a multichannel file on its own and decodes with
    the precision asked for (threshold lowered to 2 s here)."""
    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.default_codec import default_codec_dir
    from wavtokenizer_hf.long_audio import decode_long

    codec = Codec.from_pretrained(default_codec_dir())
    stereo = torch.stack([sustained_chord(3.0), 0.5 * torch.flip(sustained_chord(3.0), [0])])
    short = {ch: codec.encode(stereo[ch], 24000).audio_codes[0] for ch in (0, 1)}
    monkeypatch.setattr("wavtokenizer_hf.codec.STREAMING_THRESHOLD_SECONDS", 2.0)
    both = codec.encode(stereo, 24000, keep_channels=True).audio_codes
    assert torch.equal(both[0], short[0]) and torch.equal(both[1], short[1]) and not torch.equal(both[0], both[1])
    low = codec.decode(both[:1], precision="bf16")[0]
    assert torch.equal(low, decode_long(codec.fast, both[0], precision="bf16"))
    assert not torch.equal(low, codec.decode(both[:1])[0])


def test_the_exact_paths_run_without_tf32_and_restore_the_flags(monkeypatch):
    """On Ampere and later GPUs cuDNN runs fp32 convolutions in TF32 by default: the exact encode, the streaming
    encode and the exact decodes switch it off while they run (checked through the flags that every convolution
    sees, on any device), and a bf16 encode leaves them as they were."""
    import torch.nn.functional as F

    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.default_codec import default_codec_dir
    from wavtokenizer_hf.long_audio import StreamingEncoder, decode_long

    codec = Codec.from_pretrained(default_codec_dir())
    seen: list[tuple[bool, bool]] = []
    real_conv1d = F.conv1d

    def conv1d(*args, **kwargs):
        seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return real_conv1d(*args, **kwargs)

    monkeypatch.setattr(F, "conv1d", conv1d)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        wave = sustained_chord(1.0)
        runs = {
            "encode": lambda: codec.fast.encode(wave[None]),
            "streaming encode": lambda: StreamingEncoder(codec.fast, chunk_seconds=0.2).encode(torch.cat([wave] * 3)),
            "decode": lambda: codec.fast.decode(codec.fast.encode(wave[None])[0]),
            "long decode": lambda: decode_long(codec.fast, codec.fast.encode(wave[None])[0][0], chunk_frames=20),
        }
        for name, run in runs.items():
            seen.clear()
            run()
            assert seen and all(flags == (False, False) for flags in seen), name
            assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32, name  # restored
        seen.clear()
        codec.fast.encode(wave[None], precision="bf16")
        assert seen and all(flags == (True, True) for flags in seen)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_a_live_encoder_s_codes_are_the_whole_signal_s_codes_whatever_the_chunks():
    import numpy as np

    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.default_codec import default_codec_dir
    from wavtokenizer_hf.errors import WavTokenizerError

    codec = Codec.from_pretrained(default_codec_dir())
    rng = np.random.default_rng(0)
    wave = torch.cat([sustained_chord(2.5), torch.zeros(7000), 0.05 * torch.randn(24000 * 2,
                                                                               generator=torch.Generator().manual_seed(1))])
    whole = codec.encode(wave, 24000).audio_codes[0]
    sizes = {"1 ms": [24] * (wave.numel() // 24 + 1), "odd": [4801] * 30,
             "random": list(rng.integers(1, 9000, size=200)), "all at once": [wave.numel()]}
    for name, chunks in sizes.items():
        live, parts, at = codec.stream_encoder(24000), [], 0
        for size in chunks:
            parts.append(live.push(wave[at: at + size].numpy() if name == "odd" else wave[at: at + size]))
            at += size
            if at >= wave.numel():
                break
        codes = torch.cat(parts + [live.flush()])
        assert torch.equal(codes, whole), name
        if name == "1 ms":  # codes come out during the stream, not only at its end
            assert sum(p.numel() for p in parts) >= whole.numel() - live.lookahead_samples // 320 - 2
    with pytest.raises(WavTokenizerError, match="at least 321"):
        short = codec.stream_encoder(24000)
        short.push(wave[:320])
        short.flush()
    for n in (321, 1000, 2000, 5000):  # streams shorter than the look-ahead
        live = codec.stream_encoder(24000)
        assert torch.equal(torch.cat([live.push(wave[:n]), live.flush()]), codec.encode(wave[:n], 24000).audio_codes[0])
    with pytest.raises(WavTokenizerError, match="flushed"):
        live.push(wave[:10])
    with pytest.raises(WavTokenizerError, match="model's rate"):
        codec.stream_encoder(16000)
    with pytest.raises(WavTokenizerError, match="1-D float audio"):
        codec.stream_encoder(24000).push(torch.zeros(2, 100))


def test_the_live_encoder_benchmark_measures_each_chunk_size_and_checks_exactness(tmp_path):
    import json
    import subprocess
    import sys

    from conftest import ROOT

    result = subprocess.run([sys.executable, "bench_live_encode.py", "--seconds", "2", "--chunks-ms", "40", "320",
                             "--out", str(tmp_path / "live.json")], cwd=ROOT / "benchmarks", capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "live.json").read_text())["rows"]
    assert [r["chunk_ms"] for r in rows] == [40, 320] and all(r["exact"] for r in rows)
    assert all(r["latency_ms"] > r["chunk_ms"] + r["lookahead_ms"] for r in rows)
