"""Codec evaluation: the identity scores at the ceiling, a real codec gets sane values, metrics by hand."""

from __future__ import annotations

import math
import shutil

import pytest
import soundfile as sf
import torch

from wavtokenizer_hf.codec import Codec
from wavtokenizer_hf.evaluation import (
    CodecReconstructor,
    Identity,
    LatentReconstructor,
    evaluate,
    load_test_set,
    markdown_table,
)
from wavtokenizer_hf.evaluation.asr import word_errors
from wavtokenizer_hf.evaluation.pitch import track_pitch
from wavtokenizer_hf.evaluation.quality import has
from wavtokenizer_hf.evaluation.runner import EVAL_RATE, codebook_usage

from conftest import ROOT


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    for name in ("a0007", "b0007"):  # twice: a transcript must not depend on what was decoded before it
        shutil.copy(ROOT / "assets" / "audio" / "arctic_a0007.wav", folder / f"{name}.wav")
        (folder / f"{name}.txt").write_text("And you always want to see it in the superlative degree.")
    noise = torch.randn(24000, generator=torch.Generator().manual_seed(0)).numpy() * 0.05
    sf.write(folder / "noise.wav", noise, 24000)  # no voiced frame: left out of the pitch averages
    return folder


@pytest.fixture(scope="module")
def results(speech_folder, converted_dir):
    utterances = load_test_set(speech_folder)
    return evaluate([Identity(), CodecReconstructor(converted_dir)], utterances)


def test_identity_is_at_the_ceiling(results):
    identity = results["codecs"]["identity"]["summary"]
    assert identity["mel_distance"] == 0 and identity["stft_distance"] == 0
    assert identity["stoi"] > 0.99 and identity["vuv_f1"] == 1.0 and identity["f0_rmse_cents"] == 0
    if has("pesq"):
        assert identity["pesq_wb"] > 4.4
    assert identity["wer"] == identity["wer_original"] == results["original"]["wer"]
    assert identity["mos"] == pytest.approx(results["original"]["mos"])


def test_random_weight_codec_scores_far_below_the_ceiling(results):
    codec = results["codecs"]["small75"]["summary"]
    assert codec["mel_distance"] > 0.5 and codec["stoi"] < 0.8
    if has("pesq"):
        assert 1.0 <= codec["pesq_wb"] < 2.0
    assert codec["wer"] >= results["original"]["wer"]
    assert 0 < codec["codebook_used"] <= 1 and codec["bits_per_second"] == pytest.approx(75 * 9)
    table = markdown_table(results)
    assert "| metric | identity | small75 |" in table and "675" in table


def test_without_vq_decodes_the_latents_the_way_the_codec_decodes_codes(converted_dir):
    """Once the codebook holds a clip's own latents, quantising changes nothing: the bypass must then give exactly
    the codec's reconstruction (same conditioning, trimming and resampling), and differ from it before."""
    wave, rate = sf.read(ROOT / "assets" / "audio" / "arctic_a0007.wav", dtype="float32")
    wave = torch.from_numpy(wave[:rate])  # reconstructors take EVAL_RATE (24 kHz) audio: 2/3 s here
    codec = Codec.from_pretrained(converted_dir)
    bypassed, codes = LatentReconstructor(codec).reconstruct(wave)
    quantised, _ = CodecReconstructor(codec).reconstruct(wave)
    assert codes is None and bypassed.shape == quantised.shape
    assert (bypassed - quantised).abs().max() > 1e-2
    with torch.no_grad():
        latents = codec.model.encoder_model.encoder(codec.prepare(wave, EVAL_RATE).unsqueeze(1))[0].T
        codec.model.encoder_model.quantizer.codebook.embed[: latents.shape[0]] = latents
    holding = Codec(codec.model, name="holding")  # a fresh fast path built from the edited codebook
    quantised, _ = CodecReconstructor(holding).reconstruct(wave)
    assert (bypassed - quantised).abs().max() < 1e-4
    assert LatentReconstructor(converted_dir).name == "small75 without VQ"


def test_recogniser_reads_the_real_recording(results):
    assert results["original"]["wer"] <= 0.2


def test_word_errors_by_hand():
    assert word_errors("the cat sat", "the cat sat") == (0, 3)
    assert word_errors("the cat sat", "a cat sat down") == (2, 3)  # one substitution, one insertion
    assert word_errors("Well, Mrs. Smith--yes!", "well mrs smith yes") == (0, 4)


def test_codebook_usage_by_hand():
    usage = codebook_usage([torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3])], codebook_size=8)
    assert usage["codebook_used"] == 0.5 and usage["code_entropy_bits"] == pytest.approx(2.0)
    assert usage["code_perplexity"] == pytest.approx(4.0)


def test_pitch_tracker_on_a_known_tone():
    rate = 24000
    t = torch.arange(rate) / rate
    tone = 0.3 * torch.sin(2 * math.pi * 180 * t) + 0.1 * torch.sin(2 * math.pi * 360 * t)
    silence = torch.zeros(rate // 2)
    f0, voiced = track_pitch(torch.cat([tone, silence]), rate)
    assert voiced[5:95].all() and not voiced[110:].any()
    assert abs(float(f0[5:95].mean()) - 180) < 2
