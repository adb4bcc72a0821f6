"""Training-curve plots from the JSONL logs: one panel per series, and lines drawn from the logged values."""

import json

import numpy as np
import pytest
from PIL import Image

from wavtokenizer_hf.curves import plot_run
from wavtokenizer_hf.errors import WavTokenizerError

LINE = np.array([31, 119, 180])  # matplotlib's first line colour (C0), used by every panel


def _write(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def codec_log(run, mel, evals=True):
    _write(run / "log.jsonl", [{"event": "start"}, *({"step": s, "seconds": 3.0 * s, "mel": mel(s)} for s in range(1, 11)),
                               *([{"event": "eval", "step": 10, "stoi": 0.5, "mel_distance": 1.2}] if evals else [])])
    return run


def lm_log(run):
    _write(run / "train_log.jsonl", [{"step": 0, "val_loss": 7.0, "elapsed_s": 1.0},
                                     {"step": 10, "train_loss": 5.0, "elapsed_s": 30.0},
                                     {"step": 20, "train_loss": 4.0, "elapsed_s": 60.0},
                                     {"step": 20, "val_loss": 4.5, "elapsed_s": 61.0}])
    return run


def image(path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def line_heights(picture: np.ndarray, panels: int, panel: int = 0) -> tuple[float, float]:
    """Mean row of the line's pixels at the left and at the right end of one panel (rows grow downwards)."""
    width = picture.shape[1] // panels
    part = picture[:, panel * width: (panel + 1) * width]
    rows, columns = np.nonzero(np.abs(part - LINE).sum(-1) < 30)
    assert len(columns) > 100, "no line drawn"
    left, right = columns.min(), columns.max()
    return float(rows[columns <= left + 8].mean()), float(rows[columns >= right - 8].mean())


def test_one_panel_per_logged_series(tmp_path):
    with_evals = image(plot_run(codec_log(tmp_path / "a", lambda s: 2 - s / 10)))
    training_only = image(plot_run(codec_log(tmp_path / "b", lambda s: 2 - s / 10, evals=False)))
    lm = image(plot_run(lm_log(tmp_path / "lm")))
    assert with_evals.shape[0] == training_only.shape[0] == lm.shape[0]  # one row of panels, same height
    # mel loss + held-out mel distance + held-out STOI; an LM's training and held-out loss; 5 inches a panel
    assert 2.5 < with_evals.shape[1] / training_only.shape[1] < 3.0
    assert 1.7 < lm.shape[1] / training_only.shape[1] < 2.2


def test_the_line_follows_the_logged_values(tmp_path):
    falling = image(plot_run(codec_log(tmp_path / "falling", lambda s: 2 - s / 10, evals=False)))
    rising = image(plot_run(codec_log(tmp_path / "rising", lambda s: 1 + s / 10, evals=False)))
    start, end = line_heights(falling, panels=1)
    assert end - start > 150  # from the top of the axes to its bottom (the panel is about 280 pixels high)
    start, end = line_heights(rising, panels=1)
    assert start - end > 150
    lm = image(plot_run(lm_log(tmp_path / "lm")))
    start, end = line_heights(lm, panels=2, panel=0)  # training loss 5.0 -> 4.0
    assert end - start > 150


def test_a_folder_without_a_log_is_refused(tmp_path):
    with pytest.raises(WavTokenizerError, match="no log.jsonl"):
        plot_run(tmp_path)
    _write(tmp_path / "log.jsonl", [{"event": "start"}])
    with pytest.raises(WavTokenizerError, match="no steps yet"):
        plot_run(tmp_path)


def test_a_merged_evaluation_becomes_a_curve_against_the_minutes_given(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    columns = {name: {"summary": {"cer_capped": cer, "wer_capped": 0.3, "stoi": 0.8, "vuv_f1": 0.4,
                                  "f0_gross_error": 0.9, "phase_advance_error": 1.0}, "per_utterance": []}
               for name, cer in (("start", 0.3), ("later", 0.2))}
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "evaluation.json").write_text(json.dumps(
        {"utterances": 2, "seconds": 3.0, "recognizer": "r", "original": {}, "codecs": columns}))
    script = [sys.executable, str(ROOT / "benchmarks" / "plot_merged_curve.py"), str(tmp_path / "merged"),
              "--out", str(tmp_path / "curve.png"), "--json", str(tmp_path / "curve.json")]
    result = subprocess.run([*script, "--point", "start=0", "--point", "later=12.5"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    points = json.loads((tmp_path / "curve.json").read_text())["points"]
    assert [(p["codec"], p["minutes"], p["cer_capped"]) for p in points] == [("start", 0.0, 0.3), ("later", 12.5, 0.2)]
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = subprocess.run([*script, "--point", "missing=3"], capture_output=True, text=True)
    assert result.returncode == 2 and "no codec 'missing'" in result.stderr
