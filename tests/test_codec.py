"""The Python API and the encode/decode/reconstruct commands on files and directories."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from wavtokenizer_hf import AudioCodes, Codec
from wavtokenizer_hf.audio_io import read_audio
from wavtokenizer_hf.cli import main

from conftest import PEAK_RSS_MB, write_tone


@pytest.fixture(scope="module")
def codec(converted_dir):
    return Codec.from_pretrained(converted_dir)


def test_encode_matches_stock_model_and_decode_restores_length(codec, fixture_array):
    wav = torch.from_numpy(fixture_array("input_wav"))[0]
    codes = codec.encode(wav, 24000)
    assert torch.equal(codes.audio_codes, torch.from_numpy(fixture_array("codes"))[0])
    assert (codes.num_samples, codes.num_frames, codes.frame_rate) == (31250, 98, 75.0)
    audio = codec.decode(codes)
    assert audio.shape == (1, 31250)
    assert (audio - torch.from_numpy(fixture_array("audio"))[:, :31250]).abs().max() <= 1e-5


def test_mixing_down_encodes_the_mean_of_the_channels_resampled_to_the_model_rate(codec):
    t = torch.arange(16000) / 16000
    stereo = torch.stack([torch.sin(2 * torch.pi * 200 * t), 0.5 * torch.sin(2 * torch.pi * 330 * t)]) * 0.3
    mixed = codec.encode(stereo, 16000)
    assert mixed.num_channels == 1 and mixed.num_samples == 24000 and mixed.num_frames == 75
    assert mixed.source_sampling_rate == 16000 and mixed.source_num_samples == 16000
    assert torch.equal(mixed.audio_codes, codec.encode(stereo.mean(0), 16000).audio_codes)
    at_model_rate = torchaudio.functional.resample(stereo.mean(0), 16000, 24000)
    assert torch.equal(mixed.audio_codes, codec.encode(at_model_rate, 24000).audio_codes)
    # the comparison can fail: either channel alone gives other codes than the mix
    for channel in stereo:
        assert not torch.equal(mixed.audio_codes, codec.encode(channel, 16000).audio_codes)


def test_keeping_channels_encodes_and_decodes_each_channel_as_if_it_were_alone(codec):
    t = torch.arange(16000) / 16000
    stereo = torch.stack([torch.sin(2 * torch.pi * 200 * t), 0.5 * torch.sin(2 * torch.pi * 330 * t)]) * 0.3
    both = codec.encode(stereo, 16000, keep_channels=True)
    assert both.num_channels == 2
    alone = [codec.encode(channel, 16000) for channel in stereo]
    for c in range(2):
        assert torch.equal(both.audio_codes[c], alone[c].audio_codes[0])
    decoded = codec.decode(both)
    assert decoded.shape == (2, 24000)
    for c in range(2):
        assert torch.allclose(decoded[c], codec.decode(alone[c])[0], atol=1e-5)
    back = codec.decode_to_source_rate(both)
    assert back.shape == (2, 16000)
    assert torch.allclose(back, torchaudio.functional.resample(decoded, 24000, 16000)[:, :16000], atol=1e-6)


def test_codes_file_round_trip(codec, tmp_path):
    codes = codec.encode(np.random.default_rng(0).normal(0, 0.1, 7000).astype(np.float32), 22050)
    path = codes.save(tmp_path / "x.codes.safetensors")
    loaded = AudioCodes.load(path)
    assert torch.equal(loaded.audio_codes, codes.audio_codes)
    for name in ("codebook_size", "sampling_rate", "hop_length", "num_samples", "source_sampling_rate",
                 "source_num_samples", "model_name", "model_fingerprint"):
        assert getattr(loaded, name) == getattr(codes, name), name
    assert loaded.model_fingerprint == codec.fingerprint and len(codec.fingerprint) == 16
    assert torch.equal(codec.decode(loaded), codec.decode(codes))


def test_cli_on_a_directory_tree(converted_dir, tmp_path, capsys):
    src = tmp_path / "audio"
    write_tone(src / "a.wav", seconds=0.4)
    write_tone(src / "sub" / "b.flac", seconds=0.7, rate=16000, channels=2)
    (src / "sub" / "broken.wav").write_text("not audio")
    (src / "notes.txt").write_text("ignored: not an audio suffix")
    codes_dir, out_dir = tmp_path / "codes", tmp_path / "decoded"

    assert main(["encode", str(src), str(codes_dir), "--model", str(converted_dir)]) == 1  # one file failed
    report = capsys.readouterr().out
    assert "done: 2 file(s), skipped: 1 (0 already written, 1 failed)" in report
    assert "broken.wav: not a readable audio file" in report
    assert sorted(p.relative_to(codes_dir).as_posix() for p in codes_dir.rglob("*")) == [
        "a.codes.safetensors", "sub", "sub/b.codes.safetensors"]

    assert main(["decode", str(codes_dir), str(out_dir), "--model", str(converted_dir), "--source-rate"]) == 0
    b, rate = sf.read(out_dir / "sub" / "b.wav")
    assert rate == 16000 and b.shape == (int(0.7 * 16000),)  # mixed down, original rate and length restored
    a, rate = sf.read(out_dir / "a.wav")
    assert rate == 24000 and a.shape == (int(0.4 * 24000),)

    # a second run skips what exists instead of overwriting it
    (src / "sub" / "broken.wav").unlink()
    assert main(["encode", str(src), str(codes_dir), "--model", str(converted_dir)]) == 0
    assert "done: 0 file(s), skipped: 2 (2 already written, 0 failed)" in capsys.readouterr().out


def test_cli_reconstruct_writes_the_codec_decode_of_the_encoded_file_at_its_rate(converted_dir, codec, tmp_path):
    src = write_tone(tmp_path / "in.wav", seconds=0.5, rate=44100, channels=2)
    out = tmp_path / "out.flac"
    assert main(["reconstruct", str(src), str(out), "--model", str(converted_dir), "--keep-channels"]) == 0
    data, rate = sf.read(out, dtype="float32")
    assert rate == 44100 and data.shape == (int(0.5 * 44100), 2)
    waveform, _ = read_audio(src)
    expected = codec.decode_to_source_rate(codec.encode(waveform, 44100, keep_channels=True))
    written = torch.from_numpy(data.T)
    assert (written - expected.clamp(-1, 1)).abs().max() <= 2 / 32768  # FLAC holds 16-bit samples
    assert (written - waveform).abs().max() > 0.05  # a random-weight codec: far from the input itself


def test_cli_decode_of_a_single_codes_file_writes_the_codec_decode(converted_dir, codec, tmp_path):
    src = write_tone(tmp_path / "in.wav", seconds=0.6, rate=16000)
    codes_path, wav = tmp_path / "in.codes.safetensors", tmp_path / "back.wav"
    assert main(["encode", str(src), str(codes_path), "--model", str(converted_dir)]) == 0
    codes = AudioCodes.load(codes_path)
    assert torch.equal(codes.audio_codes, codec.encode(*read_audio(src)).audio_codes)
    assert main(["decode", str(codes_path), str(wav), "--model", str(converted_dir)]) == 0
    data, rate = sf.read(wav, dtype="float32")
    assert rate == 24000 and torch.equal(torch.from_numpy(data)[None], codec.decode(codes))  # float WAV: exact


def test_directory_mode_refuses_two_inputs_that_would_write_one_output(converted_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    write_tone(folder / "a.wav")
    write_tone(folder / "a.flac", freq=330.0)
    write_tone(folder / "b.wav")
    code = main(["encode", str(folder), str(tmp_path / "out"), "--model", str(converted_dir)])
    assert code == 2 and "a.flac, a.wav -> a.codes.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing half done


def test_an_odd_sampling_rate_resamples_in_bounded_memory_and_common_rates_as_torchaudio_does():
    import math
    import subprocess
    import sys

    import torchaudio.functional as AF

    from wavtokenizer_hf.audio_io import resample

    noise = torch.randn(1, 44100, generator=torch.Generator().manual_seed(0)) * 0.1
    for rate in (8000, 16000, 22050, 32000, 44100, 48000):  # torchaudio's kernel, summed in fixed-size groups
        ours, theirs = resample(noise[:, :rate], rate, 24000), AF.resample(noise[:, :rate], rate, 24000)
        assert ours.shape == theirs.shape and float((ours - theirs).abs().max()) < 1e-6
    t = torch.arange(12001) / 12001
    tone = resample(torch.sin(2 * math.pi * 1000 * t)[None], 12001, 24000)[0]
    expected = torch.sin(2 * math.pi * 1000 * torch.arange(24000) / 24000)
    assert tone.shape == (24000,) and float((tone - expected)[200:-200].abs().max()) < 2e-3
    script = ("import torch; from wavtokenizer_hf.audio_io import resample; "
              f"resample(torch.randn(2, 44101) * 0.1, 44101, 24000); print({PEAK_RSS_MB})")
    peak_mb = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                 check=True).stdout.split()[-1])
    assert peak_mb < 1500  # the sinc kernel alone would be 4.2 GB for 44,101 -> 24,000 Hz
