"""Codec evaluation: the identity scores at the ceiling, a real codec gets sane values, metrics by hand."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from wavtokenizer_hf.codec import Codec
from wavtokenizer_hf.evaluation import (
    CodecReconstructor,
    Identity,
    LatentReconstructor,
    evaluate,
    load_test_set,
    markdown_table,
    merge_results,
)
from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.evaluation import asr, unique_codec_names
from wavtokenizer_hf.evaluation.asr import char_errors, word_errors
from wavtokenizer_hf.evaluation.paired import paired_differences, paired_table
from wavtokenizer_hf.evaluation.pitch import track_pitch
from wavtokenizer_hf.evaluation.quality import has
from wavtokenizer_hf.evaluation.runner import EVAL_RATE, Utterance, codebook_usage
from wavtokenizer_hf.evaluation.spectral import mel_distance, multi_resolution_stft_distance, phase_advance_error

from conftest import ROOT


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    # twice, in two folders (one folder's two copies of a recording count once): a transcript must not depend on
    # what was decoded before it
    for name in ("a0007", "again/b0007"):
        (folder / name).parent.mkdir(exist_ok=True)
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
    assert identity["wer"] == identity["wer_original"] == results["original"]["wer"]
    assert identity["mos"] == pytest.approx(results["original"]["mos"])


def test_random_weight_codec_scores_far_below_the_ceiling(results):
    codec = results["codecs"]["small75"]["summary"]
    assert codec["mel_distance"] > 0.5 and codec["stoi"] < 0.8
    assert codec["wer"] >= results["original"]["wer"]
    assert 0 < codec["codebook_used"] <= 1 and codec["bits_per_second"] == pytest.approx(75 * 9)
    table = markdown_table(results)
    assert "| metric | identity | small75 |" in table and "675" in table


# PESQ is built from source (a C compiler is needed): without it these tests are reported as skipped, and
# tests/test_install.py fails where a compiler is present but pesq is not installed
needs_pesq = pytest.mark.skipif(not has("pesq"), reason="PESQ not checked: the pesq package is not installed (it "
                                                        "builds from source and needs a C compiler)")


@needs_pesq
def test_pesq_of_the_identity_is_at_the_ceiling_and_of_a_random_codec_far_below(results):
    assert results["codecs"]["identity"]["summary"]["pesq_wb"] > 4.4
    assert 1.0 <= results["codecs"]["small75"]["summary"]["pesq_wb"] < 2.0


def np_magnitudes(x: torch.Tensor, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| (frequency, frame) in numpy: reflect-padded frames, periodic Hann window."""
    padded = np.pad(x.double().numpy(), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    return np.abs(np.fft.rfft(frames * window, axis=1)).T


@pytest.fixture(scope="module")
def pair():
    """A fixed (reference, estimate) pair at 24 kHz: the ARCTIC recording, and it low-passed with noise added."""
    wave, rate = sf.read(ROOT / "assets" / "audio" / "arctic_a0007.wav", dtype="float32")
    reference = torchaudio.functional.resample(torch.from_numpy(wave), rate, EVAL_RATE)
    noise = 0.02 * torch.randn(reference.shape, generator=torch.Generator().manual_seed(0))
    return reference, torchaudio.functional.lowpass_biquad(reference + noise, EVAL_RATE, 3000.0)


def test_mel_and_stft_distances_follow_their_definitions_on_a_fixed_pair(pair):
    reference, estimate = pair

    def log_distance(a: np.ndarray, b: np.ndarray) -> float:
        """Both clamped at the reference's peak less 60 dB, averaged over the rows (bands, bins) where the reference
        exceeds that floor in some frame."""
        floor = a.max() * 10 ** (-60 / 20)
        inside = a.max(axis=1) > floor
        assert 0 < inside.sum() < len(inside)  # the 16 kHz recording's empty top band is left out
        return np.abs(np.log(np.maximum(a, floor)) - np.log(np.maximum(b, floor)))[inside].mean()

    # WavTokenizer's mel: n_fft 1024, hop 256, 100 HTK mel bands up to 12 kHz, magnitudes; natural log
    bands = torchaudio.functional.melscale_fbanks(513, 0.0, EVAL_RATE / 2, 100, EVAL_RATE).double().numpy()
    mel = lambda x: bands.T @ np_magnitudes(x, 1024, 256)  # noqa: E731
    expected = log_distance(mel(reference), mel(estimate))
    assert mel_distance(reference, estimate, EVAL_RATE) == pytest.approx(expected, rel=1e-5)
    total = 0.0
    for n_fft, hop in ((512, 128), (1024, 256), (2048, 512)):
        a, b = np_magnitudes(reference, n_fft, hop), np_magnitudes(estimate, n_fft, hop)
        total += np.linalg.norm(a - b) / np.linalg.norm(a)  # spectral convergence
        total += log_distance(a, b)
    assert multi_resolution_stft_distance(reference, estimate) == pytest.approx(total / 3, rel=1e-5)


def test_a_copy_twice_as_loud_is_ln2_away_in_log_mel_and_one_plus_ln2_in_stft():
    noise = 0.1 * torch.randn(EVAL_RATE, generator=torch.Generator().manual_seed(1))  # no mel value near the floor
    assert mel_distance(noise, 2 * noise, EVAL_RATE) == pytest.approx(math.log(2), abs=1e-5)
    assert mel_distance(2 * noise, noise, EVAL_RATE) == pytest.approx(math.log(2), abs=1e-5)
    # 13 of the noise's 145k STFT bins lie under the floor, where the two are less than ln 2 apart
    assert multi_resolution_stft_distance(noise, 2 * noise) == pytest.approx(1 + math.log(2), abs=1e-4)
    assert multi_resolution_stft_distance(2 * noise, noise) == pytest.approx(1 / 2 + math.log(2), abs=1e-4)


def _vowel(seconds: float = 1.0, f0: float = 140.0) -> torch.Tensor:
    """A voiced sound: harmonics of a gliding f0 (140 -> 180 Hz) with decaying amplitudes."""
    t = torch.arange(int(seconds * EVAL_RATE)) / EVAL_RATE
    phase = 2 * math.pi * (f0 * t + 20 * t**2)
    return 0.1 * sum(torch.sin(k * phase + k) / k for k in range(1, 30))


def _with_phases(signal: torch.Tensor, phases) -> torch.Tensor:
    """The signal's STFT magnitudes (n_fft 1024, hop 256) with other phases: `phases(spectrum)`."""
    window = torch.hann_window(1024)
    spec = torch.stft(signal, 1024, 256, window=window, return_complex=True)
    return torch.istft(torch.polar(spec.abs(), phases(spec)), 1024, 256, window=window, length=signal.numel())


def test_phase_advance_error_is_zero_for_a_delay_and_near_random_for_a_frozen_or_scrambled_phase():
    """A decoder whose phase does not move between frames (the frame-rate buzz) loses the advance; a delayed copy
    keeps it."""
    vowel = _vowel()
    frozen = _with_phases(vowel, lambda spec: torch.zeros(spec.shape))
    scrambled = _with_phases(vowel, lambda spec: 2 * math.pi * torch.rand(spec.shape, generator=torch.Generator().manual_seed(0)))
    delayed = torch.cat([torch.zeros(37), vowel[:-37]])
    assert phase_advance_error(vowel, vowel) == pytest.approx(0.0, abs=1e-4)
    assert phase_advance_error(vowel[37:], delayed[37:]) < 0.05
    assert phase_advance_error(vowel, frozen) == pytest.approx(math.pi / 2, abs=0.15)  # advances spread over a turn
    assert phase_advance_error(vowel, scrambled) > 0.6  # resynthesis makes random phases partly consistent again


def test_stoi_and_mos_equal_the_libraries_own_computation_on_a_fixed_pair(pair):
    import distillmos
    from pystoi import stoi

    from wavtokenizer_hf.evaluation import quality

    reference, estimate = pair
    expected = stoi(reference.double().numpy(), estimate.double().numpy(), EVAL_RATE, extended=False)
    assert quality.stoi(reference, estimate, EVAL_RATE) == (pytest.approx(expected, abs=1e-12), None)
    assert abs(expected - stoi(estimate.double().numpy(), reference.double().numpy(), EVAL_RATE)) > 0.01  # order
    model = distillmos.ConvTransformerSQAModel().eval()
    at_16k = torchaudio.functional.resample(estimate, EVAL_RATE, 16000)
    window = 122880  # 7.68 s at 16 kHz: a shorter clip is tiled to fill the model's window, not zero-padded
    tiled = at_16k.repeat(math.ceil(window / at_16k.numel()))[:window]
    with torch.no_grad():  # a 16 kHz model
        expected = float(model(tiled[None]).squeeze())
    assert quality.mos(estimate, EVAL_RATE) == pytest.approx(expected, abs=1e-5)


@needs_pesq
def test_pesq_equals_the_pesq_package_wide_band_at_16_khz_on_a_fixed_pair(pair):
    from pesq import pesq

    from wavtokenizer_hf.evaluation import quality

    reference, estimate = pair
    from wavtokenizer_hf.audio_io import resample

    at_16k = [resample(x, EVAL_RATE, 16000).double().numpy() for x in (reference, estimate)]
    expected = pesq(16000, at_16k[0], at_16k[1], "wb")
    assert quality.pesq_wb(reference, estimate, EVAL_RATE) == (pytest.approx(expected, abs=1e-6), None)
    assert abs(expected - pesq(16000, at_16k[1], at_16k[0], "wb")) > 0.1  # the order matters
    assert abs(expected - pesq(16000, at_16k[0], at_16k[1], "nb")) > 0.1  # and the band


@pytest.fixture(scope="module")
def reconstructed(speech_folder, converted_dir):
    """(reference, reconstruction) of a0007.wav by the fixture codec, cut to one length as the runner does."""
    (utterance,) = load_test_set(speech_folder / "a0007.wav")
    estimate, _ = CodecReconstructor(converted_dir).reconstruct(utterance.waveform)
    n = min(utterance.waveform.numel(), estimate.numel())
    return utterance.waveform[:n], estimate[:n]


def codec_row(results):
    return next(r for r in results["codecs"]["small75"]["per_utterance"] if r["id"] == "a0007.wav")


def test_each_row_scores_the_reference_against_the_codec_reconstruction(results, reconstructed):
    """The runner's per-utterance scores are the metrics of (original, reconstruction), in that order."""
    from pystoi import stoi

    from wavtokenizer_hf.evaluation import quality
    from wavtokenizer_hf.evaluation.pitch import pitch_agreement

    reference, estimate = reconstructed
    row = codec_row(results)
    assert row["mel_distance"] == pytest.approx(mel_distance(reference, estimate, EVAL_RATE), rel=1e-6)
    assert row["stft_distance"] == pytest.approx(multi_resolution_stft_distance(reference, estimate), rel=1e-6)
    assert row["stoi"] == pytest.approx(stoi(reference.double().numpy(), estimate.double().numpy(), EVAL_RATE),
                                        abs=1e-9)
    assert row["f0_gross_error"] == pitch_agreement(reference, estimate, EVAL_RATE)["f0_gross_error"]
    assert row["mos"] == pytest.approx(quality.mos(estimate, EVAL_RATE), abs=1e-5)


@needs_pesq
def test_each_row_has_the_pesq_of_the_reference_against_the_codec_reconstruction(results, reconstructed):
    from wavtokenizer_hf.evaluation import quality

    reference, estimate = reconstructed
    assert codec_row(results)["pesq_wb"] == pytest.approx(quality.pesq_wb(reference, estimate, EVAL_RATE)[0],
                                                          abs=1e-6)
    assert quality.pesq_wb(estimate, reference, EVAL_RATE)[0] != pytest.approx(codec_row(results)["pesq_wb"],
                                                                               abs=1e-3)  # the order matters


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


SENTENCE = "And you always want to see it in the superlative degree."


def test_whisper_reads_the_real_recording_and_is_named(results):
    assert results["recognizer"] == "Whisper tiny.en"  # the asr extra is part of make test's install
    assert results["original"]["wer"] <= 0.1 and results["original"]["cer"] <= 0.05
    assert "WER and CER by Whisper tiny.en" in markdown_table(results)


def test_whisper_hears_no_sentence_in_noise(speech_folder):
    noise, rate = sf.read(speech_folder / "noise.wav", dtype="float32")
    errors, words = word_errors(SENTENCE, asr.WHISPER.transcribe(torch.from_numpy(noise), rate))
    assert errors / words >= 0.9


def test_pocketsphinx_stays_available_as_the_fallback():
    assert asr.recognizer("pocketsphinx").name == "pocketsphinx en-us"
    with pytest.raises(WavTokenizerError, match="unknown recogniser"):
        asr.recognizer("vosk")


def test_whisper_weights_that_differ_from_the_recorded_ones_are_refused(tmp_path):
    from wavtokenizer_hf.evaluation import whisper

    source = whisper.model_dir()
    for name in whisper.MODEL_SHA256:
        (tmp_path / name).symlink_to(source / name)
    whisper.verify_weights(tmp_path)  # the installed weights are the recorded ones
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").write_text((source / "config.json").read_text().replace("}", ' }', 1))
    with pytest.raises(WavTokenizerError, match="differ from the recorded ones"):
        whisper.verify_weights(tmp_path)


def test_word_and_character_errors_of_a_known_substitution():
    assert word_errors("the cat sat", "the bat sat") == (1, 3)
    assert char_errors("the cat sat", "the bat sat") == (1, 11)
    assert char_errors("the cat sat", "") == (11, 11)


def test_numbers_are_written_alike_in_reference_and_transcript():
    """Whisper's English normaliser writes spelled-out numbers as digits ("21 pounds" is one word, "£21")."""
    assert word_errors("He paid 21 pounds on the 3rd of May, 1905.",
                       "he paid twenty-one pounds on the third of may nineteen hundred and five") == (0, 9)
    assert word_errors("3.5 percent", "three point five percent") == (0, 1)


def test_two_codecs_in_folders_of_the_same_name_get_two_columns(tmp_path):
    a, b = tmp_path / "runs" / "a" / "final", tmp_path / "runs" / "b" / "final"
    assert unique_codec_names([a, b]) == ["a/final", "b/final"]
    assert unique_codec_names([a, tmp_path / "other"]) == ["final", "other"]
    with pytest.raises(WavTokenizerError, match="given twice"):
        unique_codec_names([a, tmp_path / "runs" / "a" / ".." / "a" / "final"])
    with pytest.raises(WavTokenizerError, match="share a name"):
        evaluate([Identity(), Identity()], [])


def _with_codecs(results: dict, names: list[str]) -> dict:
    return {**results, "codecs": {name: results["codecs"][name] for name in names}}


def test_evaluations_run_apart_merge_into_the_table_of_one_run(results):
    identity, codec = _with_codecs(results, ["identity"]), _with_codecs(results, ["small75"])
    assert markdown_table(merge_results([identity, codec])) == markdown_table(results)
    with pytest.raises(WavTokenizerError, match="appears in two evaluations"):
        merge_results([codec, codec])
    with pytest.raises(WavTokenizerError, match="different test sets"):
        merge_results([identity, {**codec, "seconds": results["seconds"] + 1}])
    hashes = codec["provenance"]["utterances"]
    other_ids = {**codec, "provenance": {**codec["provenance"], "utterances": {"another": hashes["a0007.wav"]}}}
    with pytest.raises(WavTokenizerError, match="differ in utterances"):
        merge_results([identity, other_ids])
    with pytest.raises(WavTokenizerError, match="different recognisers"):
        merge_results([identity, {**codec, "recognizer": "pocketsphinx"}])


def _scored(rows: list[tuple]) -> dict:
    """A codec column from (errors, words, stoi) per utterance."""
    return {"per_utterance": [{"id": f"u{i}", "kind": "speech", "errors": e, "words": w, "stoi": stoi}
                              for i, (e, w, stoi) in enumerate(rows)]}


def test_paired_differences_pool_capped_errors_and_average_the_rest_by_hand():
    results = {"codecs": {"a": _scored([(1, 10, 0.5), (0, 10, 0.7), (2, 20, 0.6)]),
                          "b": _scored([(3, 10, 0.6), (50, 10, 0.7), (2, 20, None)]),
                          "a again": _scored([(1, 10, 0.5), (0, 10, 0.7), (2, 20, 0.6)])}}
    differences = paired_differences(results, "a", rounds=500)
    wer, stoi = differences["b"]["wer_capped"], differences["b"]["stoi"]
    assert wer["difference"] == pytest.approx((3 + 10 + 2 - 1 - 0 - 2) / 40)  # the loop counts 10, not 50
    assert stoi["difference"] == pytest.approx((0.1 + 0.0) / 2)  # only utterances both codecs have a value for
    assert wer["low"] <= wer["difference"] <= wer["high"] and stoi["low"] <= stoi["difference"] <= stoi["high"]
    assert all(v["difference"] == v["low"] == v["high"] == 0 for v in differences["a again"].values())
    del results["codecs"]["a again"]
    assert "| WER, capped (points) | +30.0 [" in paired_table(results, "a", rounds=500)
    for codec in ("a", "b"):  # an utterance without a transcript counts for neither codec's rate
        results["codecs"][codec]["per_utterance"].append({"id": "u9", "kind": "speech", "stoi": 0.5})
    assert paired_differences(results, "a", rounds=50)["b"]["wer_capped"]["difference"] == pytest.approx(12 / 40)
    results["codecs"]["c"] = _scored([(1, 10, 0.5)])
    with pytest.raises(WavTokenizerError, match="scored on different utterances"):
        paired_differences(results, "a")


def test_distillmos_and_pesq_get_paired_differences_like_the_other_means():
    def scored(mos, pesq):
        return {"per_utterance": [{"id": f"u{i}", "kind": "speech", "mos": m, "pesq_wb": p}
                                  for i, (m, p) in enumerate(zip(mos, pesq))]}

    results = {"codecs": {"a": scored([2.0, 3.0, 2.5], [1.1, 1.2, 1.3]), "b": scored([1.5, 2.0, 2.5], [1.3, 1.2, 1.6])}}
    differences = paired_differences(results, "a", rounds=200)["b"]
    assert differences["mos"]["difference"] == pytest.approx(-0.5)
    assert differences["pesq_wb"]["difference"] == pytest.approx(0.5 / 3)
    assert "| DistillMOS | -0.50 [" in paired_table(results, "a", rounds=200)


def test_an_interval_bound_that_rounds_to_zero_shows_which_side_of_zero_it_lies_on():
    from wavtokenizer_hf.evaluation.paired import format_difference

    touching = {"difference": -0.0383, "low": -0.0851, "high": 0.00038}  # a rate: printed in points
    assert format_difference("wer_capped", touching) == "-3.8 [-8.5, +0.04]"
    assert format_difference("cer_capped", {**touching, "high": -0.00038}) == "-3.8 [-8.5, -0.04]"
    assert format_difference("stoi", {"difference": 0.0151, "low": 0.0063, "high": 0.0238}) == "+0.015 [+0.006, +0.024]"
    assert format_difference("mos", {"difference": 0.0, "low": 0.0, "high": 0.0}) == "+0.00 [+0.00, +0.00]"
    assert format_difference("stoi", {"difference": 0.01, "low": -0.0000004, "high": 0.02}) == \
        "+0.010 [-0.000000, +0.020]"  # the extra decimals stop at six


def test_results_that_cannot_be_written_leave_the_earlier_evaluation_whole(results, tmp_path):
    from wavtokenizer_hf.evaluation import write_results

    json_path, md_path = write_results(results, tmp_path)
    before = (json_path.read_text(), md_path.read_text())
    with pytest.raises(KeyError):  # serialisable, but no table can be made of it
        write_results({key: value for key, value in results.items() if key != "utterances"}, tmp_path)
    assert (json_path.read_text(), md_path.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluation.json", "evaluation.md"]


def test_word_errors_by_hand():
    assert word_errors("the cat sat", "the cat sat") == (0, 3)
    assert word_errors("the cat sat", "a cat sat down") == (2, 3)  # one substitution, one insertion
    assert word_errors("Well, Mrs. Smith--yes!", "well mrs smith yes") == (0, 4)


def test_a_recogniser_loop_on_one_utterance_outweighs_the_others_only_in_the_uncapped_rate():
    from wavtokenizer_hf.evaluation.runner import _pooled

    rows = [{"errors": 1, "words": 10}, {"errors": 0, "words": 10}, {"errors": 200, "words": 10}]  # a loop
    assert _pooled(rows, "errors", "words") == pytest.approx(201 / 30)
    assert _pooled(rows, "errors", "words", capped=True) == pytest.approx(11 / 30)


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
    assert abs(f0[5:95] - 180).max() < 0.05  # measured 0.005 Hz; the lag's parabolic interpolation is needed here


# --- degenerate outputs rank last --------------------------------------------------------------------------------

class Degenerate:
    """A "codec" that ignores (or mangles) its input."""

    bits_per_second = None
    codebook_size = None

    def __init__(self, name, make):
        self.name, self.make = name, make

    def reconstruct(self, waveform):
        return self.make(waveform), None


def pulse_train(waveform):  # a constant 75 Hz buzz at the utterance's level, no information about it
    buzz = torch.zeros_like(waveform)
    buzz[::320] = 1.0
    return buzz * float(waveform.abs().max())


DEGENERATES = [
    Degenerate("buzz", pulse_train),
    Degenerate("silence", torch.zeros_like),
    Degenerate("white noise", lambda w: 0.05 * torch.randn(w.shape, generator=torch.Generator().manual_seed(0))),
    Degenerate("reversed", lambda w: w.flip(0)),
    Degenerate("truncated", lambda w: w[: w.numel() // 2]),  # the first half only: scored as silent where missing
    Degenerate("half silent", lambda w: torch.cat([w[: w.numel() // 2], torch.zeros(w.numel() - w.numel() // 2)])),
]
HEADLINE = {"stoi": max, "mel_distance": min, "wer": min, "cer": min, "f0_gross_error": min, "vuv_mcc": max,
            "speaker_similarity": max, "mos": max}  # direction: which is better
# where a degenerate output may tie with, beat, or have no value beside the real codec, and the flag that must then
# explain it; every other headline metric must rank it below the codec
MAY_WIN = {
    "buzz": ({"mos"}, "monotone"),
    "silence": ({"mos"}, "silent"),
    "white noise": ({"mos"}, "unvoiced"),
    "reversed": ({"mos", "speaker_similarity", "vuv_mcc", "f0_gross_error"}, "unrelated"),
    # the codec loses most of this voice's pitch: half the utterance kept exactly has fewer F0 errors
    "truncated": ({"mos", "speaker_similarity", "vuv_mcc", "f0_gross_error"}, "length_mismatch"),
    "half silent": ({"mos", "speaker_similarity", "vuv_mcc", "f0_gross_error"}, "dropout"),
}


@pytest.fixture(scope="module")
def degenerate_results(speech_folder):
    from wavtokenizer_hf.default_codec import default_codec_dir

    speech = load_test_set(speech_folder, limit=1)  # the real ARCTIC recording
    return evaluate([CodecReconstructor(default_codec_dir(), name="default codec"), *DEGENERATES], speech)


@pytest.mark.parametrize("degenerate", [d.name for d in DEGENERATES])
def test_a_degenerate_output_scores_below_a_real_codec_on_every_headline_metric_or_is_flagged(degenerate_results,
                                                                                             degenerate):
    codec = degenerate_results["codecs"]["default codec"]["summary"]
    bad = degenerate_results["codecs"][degenerate]["summary"]
    for key in ("stoi", "mel_distance", "cer"):  # the reference-based scores rank it last whatever the flags say
        assert HEADLINE[key](bad[key], codec[key]) == codec[key] and bad[key] != codec[key], (key, bad[key], codec[key])
    worse = {key for key, better in HEADLINE.items() if bad[key] is not None and codec[key] is not None
             and better(bad[key], codec[key]) == codec[key] and bad[key] != codec[key]}
    may_win, flag = MAY_WIN[degenerate]
    assert set(HEADLINE) - worse <= may_win, (set(HEADLINE) - worse - may_win, bad)
    if set(HEADLINE) - worse and flag:  # where it ties or wins, the output carries the flag that explains it
        assert flag in degenerate_results["codecs"][degenerate]["per_utterance"][0]["flags"]


def test_each_degenerate_carries_the_flag_that_explains_it(degenerate_results):
    flags = {name: degenerate_results["codecs"][name]["per_utterance"][0]["flags"] for name in MAY_WIN}
    assert all(flag in flags[name] for name, (_, flag) in MAY_WIN.items() if flag), flags
    assert "length_mismatch" not in flags["half silent"] and "dropout" in flags["truncated"]
    assert not degenerate_results["codecs"]["default codec"][
        "per_utterance"][0]["flags"]


def test_a_silent_output_counts_as_pitch_errors_not_as_missing(degenerate_results):
    silence = degenerate_results["codecs"]["silence"]["summary"]
    assert silence["f0_gross_error"] == 1.0 and silence["vuv_f1"] == 0.0 and silence["vuv_mcc"] == 0.0
    assert silence["wer"] >= 0.9 and silence["cer"] >= 0.9  # nothing recognised (a stray "you" at most)


@needs_pesq
def test_pesq_of_a_silent_output_is_n_a_with_its_reason_not_an_abort(degenerate_results):
    silence = degenerate_results["codecs"]["silence"]["summary"]
    row = degenerate_results["codecs"]["silence"]["per_utterance"][0]
    assert silence["pesq_wb"] is None and silence["n_a"]["pesq_wb"] == 1 and "PESQ failed" in row["notes"][0]


def test_pitch_error_of_a_known_interval():
    from wavtokenizer_hf.evaluation.pitch import pitch_agreement

    t = torch.arange(EVAL_RATE) / EVAL_RATE
    tone = lambda f: 0.3 * torch.sin(2 * math.pi * f * t) + 0.1 * torch.sin(2 * math.pi * 2 * f * t)  # noqa: E731
    scores = pitch_agreement(tone(180), tone(190), EVAL_RATE)
    assert scores["f0_rmse_cents"] == pytest.approx(1200 * math.log2(190 / 180), abs=0.5)  # 93.6 cents
    assert scores["f0_gross_error"] > 0.9 and scores["vuv_f1"] == 1.0
    close = pitch_agreement(tone(180), tone(182), EVAL_RATE)  # 19.1 cents: fine, not gross
    assert close["f0_gross_error"] < 0.1
    assert close["f0_fine_rmse_cents"] == pytest.approx(1200 * math.log2(182 / 180), abs=0.5)


def test_music_and_noise_rows_get_spectral_scores_only(converted_dir):
    rng = torch.Generator().manual_seed(0)
    utterances = [Utterance("chord", 0.1 * torch.randn(EVAL_RATE, generator=rng), None, "music")]
    results = evaluate([CodecReconstructor(converted_dir)], utterances, with_mos=False)
    summary = results["codecs"]["small75"]["summary"]
    assert summary["speech_items"] == 0 and summary["nonspeech_items"] == 1
    assert summary["stoi"] is None and summary["f0_gross_error"] is None and summary["nonspeech_mel_distance"] > 0


def test_a_stoi_failure_is_per_utterance_not_an_abort():
    from wavtokenizer_hf.evaluation import quality

    short = torch.randn(2400, generator=torch.Generator().manual_seed(0)) * 0.1  # 0.1 s
    value, why = quality.stoi(short, short, EVAL_RATE)
    assert value is None and "STOI n/a" in why


@needs_pesq
def test_a_pesq_failure_is_per_utterance_not_an_abort():
    from wavtokenizer_hf.evaluation import quality

    value, why = quality.pesq_wb(torch.zeros(EVAL_RATE), torch.zeros(EVAL_RATE), EVAL_RATE)
    assert value is None and why.startswith("PESQ failed")
