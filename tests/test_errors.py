"""Bad input: one readable line, a non-zero exit, and no partial output left behind."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from safetensors.torch import load_file

from wavtokenizer_hf import AudioCodes, Codec, WavTokenizerError
from wavtokenizer_hf.cli import main
from wavtokenizer_hf.convert import convert_original_checkpoint, load_torch_checkpoint

from conftest import CKPT, YAML, write_tone


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err


# --- conversion -------------------------------------------------------------------------------------------------

def save_state(tmp_path, state, name="bad.ckpt"):
    path = tmp_path / name
    torch.save({"state_dict": state}, path)
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update({"mystery.weight": torch.zeros(3)}), "unexpected key in checkpoint: 'mystery.weight'"),
        (lambda s: s.pop("backbone.embed.bias"), "missing 1 key(s) the model needs: 'backbone.embed.bias' (64,)"),
        (lambda s: s.update({"head.out.bias": torch.zeros(7)}), "shape mismatch for 'head.out.bias': checkpoint has (7,)"),
        (lambda s: s["feature_extractor.encodec.quantizer.vq.layers.0._codebook.inited"].zero_(), "never initialised"),
    ],
)
def test_bad_checkpoint_contents(tmp_path, capsys, edit, message):
    state = load_torch_checkpoint(CKPT)
    edit(state)
    out = tmp_path / "out"
    code, err = run_cli(["convert", save_state(tmp_path, state), YAML, out], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not [p for p in leftovers(tmp_path) if p.startswith(".out")]


def test_a_plain_state_dict_converts_to_the_checkpoint_tensors(tmp_path, converted_dir):
    state = load_torch_checkpoint(CKPT)
    path = tmp_path / "plain.pt"
    torch.save(state, path)
    report = convert_original_checkpoint(path, YAML, tmp_path / "out")
    written = load_file(tmp_path / "out" / "model.safetensors")
    assert len(report.mapped) == 136 and sorted(report.mapped.values()) == sorted(written)
    assert [key for key, target in report.mapped.items() if not torch.equal(written[target], state[key])] == []
    lightning = load_file(converted_dir / "model.safetensors")  # and what the Lightning checkpoint gives
    assert [key for key in written if not torch.equal(written[key], lightning[key])] == []


def test_truncated_and_non_checkpoint_files(tmp_path, capsys):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(CKPT.read_bytes()[: 1_000_000])
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    for path in (truncated, text, tmp_path / "missing.ckpt"):
        code, err = run_cli(["convert", path, YAML, tmp_path / "out"], capsys)
        assert code == 2 and str(path) in err and "Traceback" not in err
    assert leftovers(tmp_path) == ["notes.ckpt", "truncated.ckpt"]


def yaml_with(tmp_path, edit):
    data = yaml.safe_load(YAML.read_text())
    edit(data)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["model"]["init_args"].pop("backbone"), "missing key 'backbone'"),
        (lambda d: d["model"]["init_args"]["feature_extractor"]["init_args"].pop("vq_bins"), "missing key 'vq_bins'"),
        (lambda d: d["model"]["init_args"]["feature_extractor"]["init_args"].update(num_quantizers=2), "one codebook"),
        (lambda d: d["model"]["init_args"]["head"]["init_args"].update(n_fft=1024), "n_fft = 4 x hop = 1280"),
        (lambda d: d["model"]["init_args"]["backbone"].update(class_path="decoder.models.VocosResNetBackbone"), "not supported"),
        (lambda d: d["model"]["init_args"]["backbone"]["init_args"].pop("adanorm_num_embeddings"), "AdaLayerNorm"),
        (lambda d: d["model"]["init_args"]["feature_extractor"]["init_args"].update(vq_bins=1024),
         "shape mismatch for 'feature_extractor.encodec.quantizer.vq.layers.0._codebook.cluster_size'"),
    ],
)
def test_bad_yaml(tmp_path, capsys, edit, message):
    code, err = run_cli(["convert", CKPT, yaml_with(tmp_path, edit), tmp_path / "out"], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_existing_output_is_kept_without_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, err = run_cli(["convert", CKPT, YAML, out], capsys)
    assert code == 2 and "--overwrite" in err
    assert leftovers(out) == ["precious.txt"]
    assert run_cli(["convert", CKPT, YAML, out, "--overwrite"], capsys)[0] == 0
    assert "precious.txt" not in leftovers(out) and "model.safetensors" in leftovers(out)


def test_cli_error_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "wavtokenizer_hf.cli", "convert", str(tmp_path / "nope.ckpt"), str(YAML), str(tmp_path / "o")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"wavtokenizer convert: error: checkpoint not found: {tmp_path / 'nope.ckpt'}"]


# --- audio and codes ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def codec(converted_dir):
    return Codec.from_pretrained(converted_dir)


def test_bad_audio_files(tmp_path, capsys, converted_dir):
    not_audio = tmp_path / "text.wav"
    not_audio.write_text("hello")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 24000)
    short = write_tone(tmp_path / "short.wav", seconds=0.01)  # 240 samples < 321
    nan = tmp_path / "nan.wav"
    data = np.zeros(4800, np.float32)
    data[100] = np.nan
    sf.write(nan, data, 24000, subtype="FLOAT")
    cases = {
        tmp_path / "missing.wav": "input not found",
        not_audio: "not a readable audio file",
        empty: "the audio is empty",
        short: "too short; at least 321 samples",
        nan: "1 sample(s) are NaN or Inf",
    }
    for path, message in cases.items():
        out = tmp_path / "out" / (path.stem + ".codes.safetensors")
        code, err = run_cli(["encode", path, out, "--model", converted_dir], capsys)
        assert code == 2 and message in err, (path, err)
        assert len(err.strip().splitlines()) == 1
        assert leftovers(tmp_path / "out") == []


def test_bad_arrays(codec):
    with pytest.raises(WavTokenizerError, match="dtype torch.int16 is not accepted"):
        codec.encode(torch.zeros(4800, dtype=torch.int16), 24000)
    with pytest.raises(WavTokenizerError, match=r"shape \(1, 1, 4800\) is not accepted"):
        codec.encode(torch.zeros(1, 1, 4800), 24000)
    with pytest.raises(WavTokenizerError, match="sampling_rate must be a positive integer"):
        codec.encode(torch.zeros(4800), 0)


def test_bad_codes(codec):
    with pytest.raises(WavTokenizerError, match=r"ids range over \[0, 512\], outside \[0, 512\)"):
        codec.decode(torch.tensor([0, 5, 512]))
    with pytest.raises(WavTokenizerError, match=r"ids range over \[-1, 5\]"):
        codec.decode(torch.tensor([-1, 5, 3]))
    with pytest.raises(WavTokenizerError, match="torch.float32 is not accepted"):
        codec.decode(torch.tensor([1.0, 2.0]))
    with pytest.raises(WavTokenizerError, match=r"shape \(1, 1, 3\) is not accepted"):
        codec.decode(torch.zeros(1, 1, 3, dtype=torch.long))
    with pytest.raises(WavTokenizerError, match="at least 2 are needed"):
        codec.decode(torch.tensor([3]))


def test_codes_from_an_incompatible_model_are_refused(codec, tmp_path, capsys, converted_dir):
    codes = codec.encode(torch.randn(9600) * 0.1, 24000)
    other = AudioCodes(**{**codes.__dict__, "codebook_size": 4096, "model_name": "other"})
    with pytest.raises(WavTokenizerError, match="incompatible model \\('other'\\): codebook_size 4096 != 512"):
        codec.decode(other)
    foreign = AudioCodes(**{**codes.__dict__, "model_fingerprint": "0123456789abcdef", "model_name": "foreign"})
    path = foreign.save(tmp_path / "foreign.codes.safetensors")
    code, err = run_cli(["decode", path, tmp_path / "x.wav", "--model", converted_dir], capsys)
    assert code == 2 and "made by model 'foreign'" in err and not (tmp_path / "x.wav").exists()
    code, _ = run_cli(["decode", path, tmp_path / "x.wav", "--model", converted_dir, "--allow-other-model"], capsys)
    assert code == 0 and (tmp_path / "x.wav").exists()


def test_corrupt_codes_file(tmp_path, capsys, converted_dir):
    bad = tmp_path / "bad.codes.safetensors"
    bad.write_bytes(b"\x00" * 20)
    code, err = run_cli(["decode", bad, tmp_path / "x.wav", "--model", converted_dir], capsys)
    assert code == 2 and "not a readable codes file" in err


def test_missing_model_directory(tmp_path, capsys):
    wav = write_tone(tmp_path / "a.wav")
    code, err = run_cli(["encode", wav, tmp_path / "a.codes.safetensors", "--model", tmp_path / "nomodel"], capsys)
    assert code == 2 and "model directory not found" in err


def test_integer_pcm_and_audio_far_outside_full_scale_are_refused_by_the_codec_and_the_dataset_tokenizer(
        codec, converted_dir):
    from wavtokenizer_hf.tokenization import DatasetTokenizer

    tokenizer = DatasetTokenizer(converted_dir, sampling_rate=24000)
    pcm = (np.sin(np.arange(24000) / 10) * 3000).astype(np.int16)
    for value in ({"array": pcm, "sampling_rate": 24000}, pcm, torch.from_numpy(pcm)):
        with pytest.raises(WavTokenizerError, match=r"integer audio \(int16\) is not accepted"):
            tokenizer.waveform(value)
    for peak in (1e3, 1e20):  # one code for the whole clip, or all zeros, if accepted
        loud = np.sin(np.arange(24000, dtype=np.float32) / 10) * np.float32(peak)
        with pytest.raises(WavTokenizerError, match="is far outside"):
            tokenizer.waveform({"array": loud, "sampling_rate": 24000})
        with pytest.raises(WavTokenizerError, match="is far outside"):
            codec.encode(torch.from_numpy(loud), 24000)
    hot = np.sin(np.arange(24000, dtype=np.float32) / 10) * np.float32(1.5)  # a float file a little over full scale
    assert tokenizer.waveform({"array": hot, "sampling_rate": 24000}).abs().max() > 1.4


@pytest.mark.parametrize("key, value, message", [
    ("num_samples", -5, r"num_samples is -5; expected a whole number in \[1, "),
    ("num_samples", 10**9, "num_samples is 1000000000"),  # more than the frames can give
    ("sampling_rate", "abc", "sampling_rate is 'abc'"),
    ("hop_length", 2.5, "hop_length is 2.5"),
    ("source_num_samples", 10**12, "source_num_samples is 1000000000000"),  # a huge allocation if trusted
    ("source_num_samples", 3, "source_num_samples is 3; 13440 samples at 24000 Hz are about 26880 at 48000 Hz"),
    ("source_sampling_rate", True, "source_sampling_rate is True"),
    ("model_name", 7, "model_name is 7; expected text"),
])
def test_codes_file_metadata_is_type_and_range_checked_with_one_line_and_exit_2(
        codec, tmp_path, capsys, converted_dir, key, value, message):
    import json as json_module

    from safetensors import safe_open
    from safetensors.torch import save_file

    path = codec.encode(torch.randn(26880) * 0.1, 48000).save(tmp_path / "a.codes.safetensors")
    with safe_open(path, framework="pt") as handle:
        tensors, meta = {"audio_codes": handle.get_tensor("audio_codes")}, dict(handle.metadata())
    assert AudioCodes.load(path).source_num_samples == 26880  # as written, it loads
    save_file(tensors, path, metadata={**meta, key: json_module.dumps(value)})
    with pytest.raises(WavTokenizerError, match=message):
        AudioCodes.load(path)
    code, err = run_cli(["decode", path, tmp_path / "x.wav", "--model", converted_dir], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "x.wav").exists()
