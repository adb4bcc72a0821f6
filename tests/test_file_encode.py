"""Long files and pipes encoded block by block: the offline resampler's samples and the whole signal's codes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import ROOT
from wavtokenizer_hf.audio_io import read_audio, resample
from wavtokenizer_hf.codec import Codec
from wavtokenizer_hf.default_codec import default_codec_dir
from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.file_encode import encode_blocks, encode_file, raw_blocks
from wavtokenizer_hf.streaming_resample import StreamingResampler


SHORT_THRESHOLD = 4.0  # seconds: the tests move the streaming threshold (60 s) down to keep the files small


@pytest.fixture(scope="module")
def codec():
    return Codec.from_pretrained(default_codec_dir())


@pytest.fixture
def low_threshold(monkeypatch):
    monkeypatch.setattr("wavtokenizer_hf.codec.STREAMING_THRESHOLD_SECONDS", SHORT_THRESHOLD)
    monkeypatch.setattr("wavtokenizer_hf.file_encode.STREAMING_THRESHOLD_SECONDS", SHORT_THRESHOLD)


def _speechlike(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """Real speech repeated to length, a different gain and a little noise per channel: (samples, channels)."""
    wave, source_rate = sf.read(ROOT / "assets" / "audio" / "arctic_a0007.wav", dtype="float32")
    wave = resample(torch.from_numpy(wave)[None], source_rate, rate)[0].numpy()
    wave = np.tile(wave, int(seconds * rate) // len(wave) + 1)[: int(seconds * rate)]
    rng = np.random.default_rng(seed)
    return np.stack([(0.9 - 0.2 * c) * wave + 0.003 * rng.standard_normal(len(wave)) for c in range(channels)],
                    axis=1).astype(np.float32)


@pytest.mark.parametrize("rates", [(44100, 24000), (16000, 24000), (48000, 24000), (22050, 24000), (12001, 24000)])
def test_the_streaming_resampler_gives_the_offline_samples_bit_for_bit_whatever_the_blocks(rates):
    signal = torch.from_numpy(np.random.default_rng(1).standard_normal(rates[0] * 3 + 77).astype(np.float32) * 0.3)
    whole = resample(signal[None], *rates)[0]
    if rates[0] != 12001:  # torchaudio's kernel (12,001 Hz goes through soxr): its length, its values to rounding
        import torchaudio.functional as AF

        reference = AF.resample(signal[None], *rates)[0]
        assert whole.shape == reference.shape and float((whole - reference).abs().max()) < 1e-6
    for block in (1, 333, 4096, 10**7):
        if block == 1 and rates[0] > 20000:
            continue  # sample by sample through 3 s at 44.1 kHz is slow; 333 covers odd cuts
        stream = StreamingResampler(*rates)
        parts = [stream.push(signal[i:i + block]) for i in range(0, signal.numel(), block)] + [stream.flush()]
        assert torch.equal(torch.cat(parts), whole), block


def test_a_long_stereo_file_encoded_block_by_block_gives_the_whole_signal_s_codes(codec, tmp_path, low_threshold,
                                                                                  monkeypatch):
    seconds = SHORT_THRESHOLD + 8
    read_whole = []
    monkeypatch.setattr("wavtokenizer_hf.file_encode.read_audio", lambda path: read_whole.append(path))
    path = tmp_path / "long.flac"
    sf.write(path, _speechlike(seconds, 44100, 2), 44100, subtype="PCM_24")
    waveform, rate = read_audio(path)
    expected = codec.encode(waveform, rate)
    got = encode_file(codec, path, block_seconds=3.7)
    assert not read_whole  # a long file is never read whole
    assert torch.equal(got.audio_codes, expected.audio_codes)
    assert (got.num_samples, got.source_num_samples, got.source_sampling_rate) == (
        expected.num_samples, expected.source_num_samples, 44100)
    kept = encode_file(codec, path, keep_channels=True, block_seconds=5.0)
    assert torch.equal(kept.audio_codes, codec.encode(waveform, rate, keep_channels=True).audio_codes)
    assert not torch.equal(kept.audio_codes[0], kept.audio_codes[1])


def test_three_channels_at_16_khz_mix_down_block_by_block_as_the_whole_file_does(codec, low_threshold):
    audio = _speechlike(SHORT_THRESHOLD + 3, 16000, 3, seed=2)
    expected = codec.encode(torch.from_numpy(audio.T.copy()), 16000).audio_codes
    blocks = (audio[i:i + 7919] for i in range(0, len(audio), 7919))
    assert torch.equal(encode_blocks(codec, blocks, 16000).audio_codes, expected)


def test_raw_pcm_piped_into_the_cli_gives_the_codes_of_the_same_audio(codec, tmp_path):
    audio = _speechlike(6.0, 16000, 1, seed=3)[:, 0]
    pcm = np.round(audio * 32767).astype("<i2")
    out = tmp_path / "piped.codes.safetensors"
    command = [sys.executable, "-m", "wavtokenizer_hf.cli", "encode", "-", str(out), "--model",
               str(default_codec_dir()), "--raw-rate", "16000"]
    result = subprocess.run(command, input=pcm.tobytes() + b"\x01", capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert b"1 trailing byte(s)" in result.stderr
    from wavtokenizer_hf.codes_file import AudioCodes

    expected = codec.encode(pcm.astype(np.float32) / 32768.0, 16000)
    assert torch.equal(AudioCodes.load(out).audio_codes, expected.audio_codes)
    missing = subprocess.run(command[:-2] + ["--overwrite"], input=pcm.tobytes(), capture_output=True)
    assert missing.returncode == 2 and b"--raw-rate" in missing.stderr


def test_bad_blocks_are_refused_with_where_they_are(codec):
    good = np.zeros((24000, 1), np.float32)
    with pytest.raises(WavTokenizerError, match="NaN or Inf samples after sample 24000"):
        encode_blocks(codec, iter([good, np.full((10, 1), np.nan, np.float32)]), 24000)
    with pytest.raises(WavTokenizerError, match="peak 3e\\+04 after sample 0"):
        encode_blocks(codec, iter([np.full((100, 1), 30000.0, np.float32)]), 24000)
    with pytest.raises(WavTokenizerError, match="channel count changed from 1 to 2"):
        encode_blocks(codec, iter([good, np.zeros((10, 2), np.float32)]), 24000)
    with pytest.raises(WavTokenizerError, match="empty"):
        encode_blocks(codec, iter([]), 24000)
    with pytest.raises(WavTokenizerError, match="raw format"):
        list(raw_blocks(None, "u8", 1, 10))


def test_a_streamed_decode_writes_the_live_decoder_s_audio_at_the_source_rate_and_length(codec, tmp_path):
    from wavtokenizer_hf.cli import main
    from wavtokenizer_hf.codes_file import AudioCodes
    from wavtokenizer_hf.streaming_resample import StreamingResampler

    audio = _speechlike(7.013, 16000, 2, seed=4)  # not a whole number of frames: the end is trimmed
    source = tmp_path / "in.flac"
    sf.write(source, audio, 16000)
    codes_path = tmp_path / "in.codes.safetensors"
    assert main(["encode", str(source), str(codes_path), "--model", str(default_codec_dir()), "--keep-channels"]) == 0
    codes = AudioCodes.load(codes_path)
    out = tmp_path / "back.wav"
    model = ["--model", str(default_codec_dir())]
    assert main(["decode", str(codes_path), str(out), "--stream", "--source-rate", "--lookahead", "3", *model]) == 0
    written, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == 16000 and written.shape == (codes.source_num_samples, 2)
    for channel in range(2):  # the live decoder's audio of all the codes, resampled as the offline resampler does
        live = codec.stream_decoder(lookahead_frames=3, context_frames=150, step_frames=250)
        decoded = torch.cat([live.push(codes.audio_codes[channel]), live.flush()])
        stream = StreamingResampler(24000, 16000)
        expected = torch.cat([stream.push(decoded), stream.flush()])[: codes.source_num_samples]
        assert np.array_equal(written[:, channel], expected.numpy())
    exact = codec.decode_to_source_rate(codes)[0].numpy()
    snr = 10 * np.log10(np.sum(exact**2) / np.sum((exact - written[:, 0]) ** 2))
    assert snr > 3.0  # close to the exact decode, not equal (measured per look-ahead in BENCHMARKS.md)
    assert main(["decode", str(codes_path), str(tmp_path / "x.wav"), "--lookahead", "3", *model]) == 2
    assert not (tmp_path / "x.wav").exists()
