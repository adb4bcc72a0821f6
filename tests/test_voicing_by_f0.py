"""benchmarks/voicing_by_f0.py on an evaluation whose answer is known."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT
from wavtokenizer_hf.errors import WavTokenizerError

sys.path.insert(0, str(ROOT / "benchmarks"))
import voicing_by_f0 as vf  # noqa: E402


def _row(uid, speaker, voiced, reference, char_errors=2, chars=10):
    return {"id": uid, "speaker": speaker, "voiced_share": voiced, "voiced_share_reference": reference,
            "char_errors": char_errors, "chars": chars}


EVALUATION = {
    "original": {"per_utterance": {"a1": {"char_errors": 1, "chars": 10}, "a2": {"char_errors": 30, "chars": 10},
                                   "b1": {"char_errors": 0, "chars": 10}}},
    "codecs": {"x": {"per_utterance": [
        _row("a1", "low", 0.1, 0.4), _row("a2", "low", 0.1, 0.4, char_errors=25),
        _row("b1", "high", 0.6, 0.6), _row("c1", "no_f0", 0.5, 0.5), _row("d1", "silent", 0.0, 0.0)]}},
}


def test_each_speaker_keeps_its_share_of_voicing_and_capped_errors_and_is_ordered_by_f0():
    rows = vf.speaker_rows(EVALUATION, "x", {"low": 90.0, "high": 200.0, "silent": 120.0})
    assert [r["speaker"] for r in rows] == ["low", "high"]  # no F0 or no voiced originals: left out
    low, high = rows
    assert low["utterances"] == 2 and low["voicing_kept"] == pytest.approx(0.25)
    assert low["voiced"] == pytest.approx(0.1) and low["voiced_reference"] == pytest.approx(0.4)
    assert low["cer_capped"] == pytest.approx((2 + 10) / 20)  # 25 errors on 10 characters count 10
    assert low["cer_capped_original"] == pytest.approx((1 + 10) / 20)
    assert high["voicing_kept"] == pytest.approx(1.0) and high["cer_capped_original"] == 0.0
    with pytest.raises(WavTokenizerError, match="no codec 'y'"):
        vf.speaker_rows(EVALUATION, "y", {})


def test_bands_take_the_median_of_their_speakers_and_an_edge_belongs_to_the_band_above():
    rows = [{"median_f0_hz": f0, "voicing_kept": kept}
            for f0, kept in [(90, 0.2), (99, 0.4), (100, 0.5), (149, 0.7), (150, 0.9)]]
    bands = vf.band_summary(rows, [150.0, 100.0])
    assert [b["speakers"] for b in bands] == [2, 2, 1]
    assert [b["median_voicing_kept"] for b in bands] == [pytest.approx(0.3), pytest.approx(0.6), 0.9]
    assert vf.band_summary([], [100.0])[0]["median_voicing_kept"] is None


def test_the_script_names_a_missing_file_and_a_corpus_with_no_speaker_of_the_evaluation(tmp_path, monkeypatch, capsys):
    import json

    (tmp_path / "evaluation.json").write_text(json.dumps(EVALUATION))
    monkeypatch.setattr(sys, "argv", ["voicing_by_f0.py", str(tmp_path), "--codec", "x", "--corpus", str(tmp_path)])
    with pytest.raises(WavTokenizerError, match="corpus_summary.json: not found"):
        vf.main()
    (tmp_path / "corpus_summary.json").write_text(json.dumps({"speakers": {"other": {"median_f0_hz": 100.0}}}))
    with pytest.raises(WavTokenizerError, match="no speaker of .* has a median F0"):
        vf.main()
    (tmp_path / "corpus_summary.json").write_text(json.dumps({"speakers": {"low": {"median_f0_hz": 90.0}}}))
    assert vf.main() == 0 and "| `low` (90 Hz) | 2 | 55.0% | 60.0% | 40% | 10% | 25% |" in capsys.readouterr().out
