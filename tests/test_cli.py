"""The `wavtokenizer` command beyond encode/decode/reconstruct of WAV files: export-original, info, the default model
($WAVTOKENIZER_MODEL, else ./wavtokenizer) and the compressed formats soundfile reads (OGG Vorbis/Opus, MP3, AIFF)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from wavtokenizer_hf import AudioCodes, Codec
from wavtokenizer_hf.audio_io import read_audio
from wavtokenizer_hf.cli import main
from wavtokenizer_hf.default_codec import default_codec_dir

from conftest import write_tone


@pytest.fixture(scope="module")
def codec(converted_dir):
    return Codec.from_pretrained(converted_dir)


def test_export_original_from_the_command_line_converts_back_to_the_same_weights(converted_dir, tmp_path, capsys):
    ckpt = tmp_path / "exported" / "small.ckpt"
    assert main(["export-original", str(converted_dir), str(ckpt)]) == 0
    assert f"wrote {ckpt} and {ckpt.with_suffix('.yaml')}" in capsys.readouterr().out
    assert main(["convert", str(ckpt), str(ckpt.with_suffix(".yaml")), str(tmp_path / "back")]) == 0
    first, back = load_file(converted_dir / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    assert first.keys() == back.keys()
    assert [key for key in first if not torch.equal(first[key], back[key])] == []

    before = ckpt.read_bytes()
    assert main(["export-original", str(converted_dir), str(ckpt)]) == 2  # an existing export is kept...
    assert "already exists; pass --overwrite" in capsys.readouterr().err and ckpt.read_bytes() == before
    assert main(["export-original", str(converted_dir), str(ckpt), "--overwrite"]) == 0  # ...unless asked
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["small.ckpt", "small.yaml"]  # no temporary left


def info_facts(path, capsys) -> dict[str, str]:
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    return dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())


def test_info_on_a_codes_file_shows_what_decoding_it_needs(converted_dir, codec, tmp_path, capsys):
    wav = write_tone(tmp_path / "a.wav", seconds=0.5, rate=16000, channels=2)
    codes_path = tmp_path / "a.codes.safetensors"
    assert main(["encode", str(wav), str(codes_path), "--model", str(converted_dir), "--keep-channels"]) == 0
    facts = info_facts(codes_path, capsys)
    assert facts["shape"] == "(2, 38)"  # 0.5 s resampled to 12,000 samples: 38 frames of 320
    assert (facts["codebook_size"], facts["sampling_rate"], facts["hop_length"], facts["frame_rate"]) == (
        "512", "24000", "320", "75.0")
    assert (facts["num_samples"], facts["source_sampling_rate"], facts["source_num_samples"]) == (
        "12000", "16000", "8000")
    assert facts["model_name"] == '"small75"' and facts["model_fingerprint"] == f'"{codec.fingerprint}"'


def test_info_on_a_model_directory_and_on_anything_else(converted_dir, tmp_path, capsys):
    facts = info_facts(converted_dir, capsys)
    parameters = sum(t.numel() for t in load_file(converted_dir / "model.safetensors").values())
    assert facts["parameters"] == f"{parameters:,} numbers"
    other = write_tone(tmp_path / "a.wav")
    assert main(["info", str(other)]) == 2
    assert "expected a model directory or a *.codes.safetensors file" in capsys.readouterr().err


def test_the_default_model_is_wavtokenizer_model_from_the_environment_else_the_local_wavtokenizer_folder(
        converted_dir, codec, tmp_path):
    """The default is read when cli.py is imported: a fresh process, importing it once with the variable set and
    once without it."""
    write_tone(tmp_path / "a.wav")
    (tmp_path / "wavtokenizer").symlink_to(default_codec_dir(), target_is_directory=True)  # as `wavtokenizer init`
    env = {key: value for key, value in os.environ.items() if key != "WAVTOKENIZER_MODEL"}
    env["WAVTOKENIZER_MODEL"] = str(converted_dir)
    code = textwrap.dedent("""
        import importlib, os
        import wavtokenizer_hf.cli as cli
        assert cli.main(["encode", "a.wav", "env.codes.safetensors"]) == 0
        del os.environ["WAVTOKENIZER_MODEL"]
        importlib.reload(cli)
        assert cli.main(["encode", "a.wav", "local.codes.safetensors"]) == 0
        """)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    from_variable = AudioCodes.load(tmp_path / "env.codes.safetensors")
    assert from_variable.model_fingerprint == codec.fingerprint and from_variable.codebook_size == 512
    local = AudioCodes.load(tmp_path / "local.codes.safetensors")
    shipped_size = json.loads((default_codec_dir() / "config.json").read_text())["codebook_size"]
    assert local.model_name == default_codec_dir().name and local.codebook_size == shipped_size != 512


FORMATS = [  # suffix, soundfile format and subtype, rate: the compressed formats the README promises
    (".ogg", "OGG", "VORBIS", 24000),
    (".opus", "OGG", "OPUS", 48000),
    (".mp3", "MP3", "MPEG_LAYER_III", 44100),
    (".aiff", "AIFF", "PCM_16", 22050),
]


def test_a_folder_of_ogg_opus_mp3_and_aiff_files_is_encoded_from_their_decoded_audio(converted_dir, codec, tmp_path,
                                                                                    capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    lengths = {}
    for suffix, kind, subtype, rate in FORMATS:
        t = np.arange(rate // 2) / rate
        tone = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 682 * t)).astype(np.float32)
        sf.write(folder / f"{suffix[1:]}{suffix}", tone, rate, format=kind, subtype=subtype)  # ogg.ogg, mp3.mp3...
        lengths[suffix] = (rate, len(tone), tone)
    out = tmp_path / "codes"
    assert main(["encode", str(folder), str(out), "--model", str(converted_dir)]) == 0
    assert "done: 4 file(s), skipped: 0" in capsys.readouterr().out
    for suffix, (rate, length, tone) in lengths.items():
        codes = AudioCodes.load(out / f"{suffix[1:]}.codes.safetensors")
        assert (codes.source_sampling_rate, codes.source_num_samples) == (rate, length), suffix
        waveform, read_rate = read_audio(folder / f"{suffix[1:]}{suffix}")
        assert read_rate == rate and np.corrcoef(waveform[0].numpy(), tone)[0, 1] > 0.99, suffix  # the tone itself
        assert torch.equal(codes.audio_codes, codec.encode(waveform, rate).audio_codes), suffix
