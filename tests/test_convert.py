"""Conversion of the authors' checkpoint: parity at every stage, stock loading, export layout and round trip."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoFeatureExtractor, AutoModel, WavTokenizerModel

from wavtokenizer_hf.convert import (
    convert_original_checkpoint,
    export_original_checkpoint,
    load_torch_checkpoint,
    save_hf_directory,
)
from wavtokenizer_hf.original_config import config_from_original_yaml, load_original_config, original_yaml_from_config

from conftest import CKPT, FIXTURE, KEYS_JSON, YAML


def test_config_is_derived_from_yaml():
    config = load_original_config(YAML)
    assert config.hop_length == 320 and config.n_fft == 1280
    assert list(config.upsampling_ratios) == [8, 5, 4, 2]
    assert (config.num_filters, config.hidden_size, config.codebook_size) == (4, 64, 512)
    assert (config.decoder_hidden_size, config.decoder_intermediate_size, config.decoder_num_layers) == (64, 128, 2)
    assert config.adanorm_num_embeddings == 4


def test_every_stage_matches_the_authors_outputs(converted_dir, fixture_array):
    model = AutoModel.from_pretrained(converted_dir).eval()
    wav = torch.from_numpy(fixture_array("input_wav"))[:, None]
    with torch.no_grad():
        latent = model.encoder_model.encoder(wav)
        codes = model.encode(wav).audio_codes
        features = model.encoder_model.quantizer.decode(codes[:, 0])
        audio = model.decode(codes).audio_values[:, 0]
        audio_id1 = model.decode(codes, bandwidth_id=1).audio_values[:, 0]
    assert torch.allclose(latent, torch.from_numpy(fixture_array("encoder_latent")), atol=1e-4, rtol=0)
    assert torch.equal(codes[:, 0], torch.from_numpy(fixture_array("codes"))[0])
    assert torch.equal(features, torch.from_numpy(fixture_array("features")))
    assert (audio - torch.from_numpy(fixture_array("audio"))).abs().max() <= 1e-5
    assert (audio_id1 - torch.from_numpy(fixture_array("audio_bandwidth_id1"))).abs().max() <= 1e-5


def test_converted_directory_has_the_expected_files(converted_dir):
    names = {p.name for p in converted_dir.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= names
    config = json.loads((converted_dir / "config.json").read_text())
    assert config["model_type"] == "wavtokenizer"
    card = (converted_dir / "README.md").read_text()
    assert "75 tokens per second" in card and "675 bit/s" in card and "license:" in card


def test_loads_in_a_process_with_only_torch_and_transformers(converted_dir, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("wavtokenizer_hf", "lm"):
            sys.modules[name] = None  # any import of this package now fails
        import numpy as np, torch
        from transformers import AutoFeatureExtractor, AutoModel
        model = AutoModel.from_pretrained({str(converted_dir)!r}).eval()
        fe = AutoFeatureExtractor.from_pretrained({str(converted_dir)!r})
        wav = np.load({str(FIXTURE / "input_wav.npy")!r})[0]
        inputs = fe(wav, sampling_rate=24000, return_tensors="pt")
        with torch.no_grad():
            codes = model.encode(inputs["input_values"]).audio_codes
        expected = torch.from_numpy(np.load({str(FIXTURE / "codes.npy")!r}))[0]
        assert type(model).__name__ == "WavTokenizerModel", type(model)
        assert torch.equal(codes[:, 0], expected), "codes differ"
        print("stock-load-ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stock-load-ok" in result.stdout


def test_export_reproduces_the_fixture_checkpoint(converted_dir, tmp_path):
    out = export_original_checkpoint(converted_dir, tmp_path / "exported.ckpt")
    exported = torch.load(out, map_location="cpu", weights_only=True)
    assert exported["pytorch-lightning_version"] == "1.8.6"
    exported = exported["state_dict"]
    source = load_torch_checkpoint(CKPT)
    expected_keys = {k for k in source if not k.startswith("melspec_loss.")}
    assert set(exported) == expected_keys
    for key in expected_keys:
        assert exported[key].shape == source[key].shape, key
        if not key.startswith("feature_extractor.encodec.decoder."):  # unused SEANet decoder: placeholders
            assert torch.equal(exported[key], source[key]), key
    assert config_from_original_yaml(yaml.safe_load(out.with_suffix(".yaml").read_text())) .to_dict() == \
        load_original_config(YAML).to_dict()


def test_convert_export_convert_is_bit_identical(converted_dir, tmp_path):
    ckpt = export_original_checkpoint(converted_dir, tmp_path / "round.ckpt")
    convert_original_checkpoint(ckpt, ckpt.with_suffix(".yaml"), tmp_path / "again")
    first = load_file(converted_dir / "model.safetensors")
    second = load_file(tmp_path / "again" / "model.safetensors")
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


FULL_CONFIGS = {
    75: ([8, 5, 4, 2], 1280, 320, "wavtokenizer_smalldata_frame75_3s_nq1_code4096_dim512_kmeans200_attn.yaml"),
    40: ([6, 5, 5, 4], 2400, 600, "wavtokenizer_smalldata_frame40_3s_nq1_code4096_dim512_kmeans200_attn.yaml"),
}


def full_size_yaml(tokens_per_second: int) -> dict:
    """The authors' released model section for 40 or 75 tokens/s (the fixture YAML with the full sizes)."""
    ratios, n_fft, hop, _ = FULL_CONFIGS[tokens_per_second]
    data = yaml.safe_load(YAML.read_text())
    del data["fixture_overrides"]
    init = data["model"]["init_args"]
    init["feature_extractor"]["init_args"].update(dowmsamples=ratios, vq_bins=4096)
    init["backbone"]["init_args"].update(input_channels=512, dim=768, intermediate_dim=2304, num_layers=12)
    init["head"]["init_args"].update(dim=768, n_fft=n_fft, hop_length=hop)
    return data


@pytest.mark.parametrize("tokens_per_second", [75, 40])
def test_export_layout_matches_the_released_configs(tokens_per_second, tmp_path):
    config = config_from_original_yaml(full_size_yaml(tokens_per_second))
    assert config.hop_length == FULL_CONFIGS[tokens_per_second][2]
    torch.manual_seed(0)
    model = WavTokenizerModel(config).eval()
    save_hf_directory(model, tmp_path / "hf", source="random full-size weights (test)")
    ckpt = export_original_checkpoint(tmp_path / "hf", tmp_path / "full.ckpt")
    exported = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]

    released = json.loads(KEYS_JSON.read_text())[FULL_CONFIGS[tokens_per_second][3]]["keys"]
    loaded = {k: v["shape"] for k, v in released.items() if v["group"] in ("inference", "loaded_unused")}
    assert {k: list(v.shape) for k, v in exported.items()} == loaded

    # and it converts back, bit for bit
    convert_original_checkpoint(ckpt, ckpt.with_suffix(".yaml"), tmp_path / "back")
    first, second = load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    assert all(torch.equal(first[k], second[k]) for k in first) and first.keys() == second.keys()


def test_original_yaml_round_trip_for_shrunken_40_variant():
    data = full_size_yaml(40)
    data["fixture_overrides"] = {"encoder_n_filters": 8, "latent_dim": 32}
    init = data["model"]["init_args"]
    init["backbone"]["init_args"].update(input_channels=32, dim=64, intermediate_dim=96, num_layers=3)
    init["head"]["init_args"].update(dim=64)
    config = config_from_original_yaml(data)
    assert (config.num_filters, config.hidden_size, config.hop_length, config.decoder_num_layers) == (8, 32, 600, 3)
    assert config_from_original_yaml(original_yaml_from_config(config)).to_dict() == config.to_dict()


def test_feature_extractor_matches_config(converted_dir):
    fe = AutoFeatureExtractor.from_pretrained(converted_dir)
    assert fe.sampling_rate == 24000 and fe.hop_length == 320
