"""Float16-stored codec weights: half the file, loaded by stock transformers as float32, the codebook untouched."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from wavtokenizer_hf.codec import Codec
from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.half_weights import WEIGHTS, stored_dtypes, write_half_weights

SHIPPED = Path(__file__).resolve().parents[1] / "wavtokenizer_hf" / "default_codec"


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory) -> Path:
    """The default codec in float32, each value one float32 step up: values float16 cannot hold exactly, whatever
    dtype the codec ships in."""
    out = tmp_path_factory.mktemp("full") / "codec"
    out.mkdir()
    for path in SHIPPED.iterdir():
        if path.is_file() and path.name != WEIGHTS:
            shutil.copy2(path, out / path.name)
    up = torch.tensor(float("inf"))
    state = {k: torch.nextafter(v.float(), up) if v.is_floating_point() else v
             for k, v in load_file(SHIPPED / WEIGHTS).items()}
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
    return out


@pytest.fixture(scope="module")
def half_dir(full_dir, tmp_path_factory) -> Path:
    return write_half_weights(full_dir, tmp_path_factory.mktemp("half") / "codec")


def test_stock_transformers_loads_the_half_weights_as_float32_holding_the_rounded_values(full_dir, half_dir):
    original = AutoModel.from_pretrained(full_dir).state_dict()
    loaded = AutoModel.from_pretrained(half_dir)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    state = loaded.state_dict()
    assert state.keys() == original.keys()
    for name, tensor in original.items():
        if name.startswith("encoder_model.quantizer."):
            assert torch.equal(state[name], tensor), name
        elif tensor.is_floating_point():
            assert torch.equal(state[name], tensor.half().float()), name


def test_the_weights_file_stores_two_bytes_a_weight_and_only_the_quantizer_stays_float32(full_dir, half_dir):
    full = load_file(full_dir / WEIGHTS)
    quantizer = "encoder_model.quantizer."
    expected = sum(v.numel() * (v.element_size() if k.startswith(quantizer) or not v.is_floating_point() else 2)
                   for k, v in full.items())
    assert expected <= (half_dir / WEIGHTS).stat().st_size < expected + 64 * 1024  # plus the header
    stored = load_file(half_dir / WEIGHTS)
    kept = sorted(k for k, v in stored.items() if v.dtype != torch.float16)
    assert kept and all(k.startswith("encoder_model.quantizer.") for k in kept)
    assert sum(stored_dtypes(half_dir).values()) == len(stored)
    assert json.loads((half_dir / "config.json").read_text())["dtype"] == "float32"
    assert {p.name for p in full_dir.iterdir() if p.is_file()} <= {p.name for p in half_dir.iterdir()}


def test_codes_made_by_the_float32_codec_decode_with_the_half_one_nearly_unchanged(full_dir, half_dir):
    full, half = Codec.from_pretrained(full_dir), Codec.from_pretrained(half_dir)
    assert half.fingerprint == full.fingerprint  # codes files made by one are accepted by the other
    t = torch.arange(24000) / 24000
    audio = 0.3 * torch.sin(2 * math.pi * 180 * t) * (1 + torch.sin(2 * math.pi * 3 * t))
    codes = full.encode(audio, 24000)
    a, b = full.decode(codes)[0], half.decode(codes)[0]
    ratio_db = 10 * torch.log10(a.pow(2).sum() / (a - b).pow(2).sum())
    assert 40 < ratio_db < 200  # the rounding is heard nowhere, yet the two models do differ


def test_half_weights_refuse_a_folder_without_a_codec_and_an_existing_output(tmp_path, full_dir, half_dir):
    with pytest.raises(WavTokenizerError, match="not a codec folder"):
        write_half_weights(tmp_path, tmp_path / "out")
    with pytest.raises(WavTokenizerError, match="already exists"):
        write_half_weights(full_dir, half_dir)


def test_half_weights_refuse_weights_past_the_float16_range(tmp_path, full_dir):
    src = tmp_path / "big"
    src.mkdir()
    for path in full_dir.iterdir():
        if path.is_file() and path.name != WEIGHTS:
            (src / path.name).write_bytes(path.read_bytes())
    state = load_file(full_dir / WEIGHTS)
    name = next(k for k in state if k.startswith("backbone.") and k.endswith("weight"))
    state[name] = state[name].clone()
    state[name].view(-1)[0] = 70000.0
    save_file(state, str(src / WEIGHTS), metadata={"format": "pt"})
    with pytest.raises(WavTokenizerError, match="past float16's range"):
        write_half_weights(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_cli_writes_half_weights_and_reports_both_sizes(tmp_path, capsys, full_dir):
    from wavtokenizer_hf.cli import main

    assert main(["half-weights", str(full_dir), str(tmp_path / "half")]) in (0, None)
    out = capsys.readouterr().out
    assert "MB ->" in out and "F16" in out
    assert (tmp_path / "half" / WEIGHTS).exists()
