"""benchmarks/quantisation_error.py on latents whose answer is known, and on a real codec's latents."""

from __future__ import annotations

import sys

import numpy as np
import torch
from transformers import AutoModel

from conftest import ROOT
from wavtokenizer_hf.default_codec import default_codec_dir

sys.path.insert(0, str(ROOT / "benchmarks"))
import quantisation_error as qe  # noqa: E402
from voice_sets import latents_before_and_after_quantiser  # noqa: E402


def test_exact_codes_lose_nothing_and_the_latents_mean_loses_all_of_their_variance():
    latents = np.random.default_rng(0).standard_normal((200, 8)) * np.arange(1, 9)
    speakers = np.array(["a"] * 150 + ["b"] * 50)
    assert qe.relative_error(latents, latents.copy(), speakers) == {"all": 0.0, "a": 0.0, "b": 0.0}
    mean = np.broadcast_to(latents.mean(axis=0), latents.shape)
    assert np.isclose(qe.relative_error(latents, mean, speakers)["all"], 1.0)
    half = latents.copy()
    half[:150] = mean[:150]  # speaker a's frames replaced by the mean, b's kept
    errors = qe.relative_error(latents, half, speakers)
    assert errors["b"] == 0.0 and errors["a"] > 0.5 and np.isclose(errors["all"], 0.75 * errors["a"])


def test_a_codec_s_quantised_latents_are_its_codebook_entries_nearest_the_encoder_output():
    model = AutoModel.from_pretrained(default_codec_dir()).eval()
    audio = 0.1 * torch.randn(24000, generator=torch.Generator().manual_seed(0))
    latents, quantised = latents_before_and_after_quantiser(model, audio)
    assert latents.shape == quantised.shape and latents.shape[1] == model.config.codebook_dim
    codebook = model.encoder_model.quantizer.codebook.embed
    nearest = torch.cdist(latents, codebook).argmin(dim=1)
    assert torch.allclose(quantised, codebook[nearest], atol=1e-5)
