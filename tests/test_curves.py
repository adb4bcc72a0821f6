"""Training-curve plots from the JSONL logs."""

import json

import pytest

from wavtokenizer_hf.curves import plot_run
from wavtokenizer_hf.errors import WavTokenizerError


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_codec_and_lm_logs_plot_to_png(tmp_path):
    codec = tmp_path / "codec"
    codec.mkdir()
    _write(codec / "log.jsonl", [{"event": "start"}, *({"step": s, "seconds": 3.0 * s, "mel": 2 - s / 10}
                                                       for s in range(1, 11)),
                                 {"event": "eval", "step": 10, "stoi": 0.5, "mel_distance": 1.2}])
    lm = tmp_path / "lm"
    lm.mkdir()
    _write(lm / "train_log.jsonl", [{"step": 0, "val_loss": 7.0, "elapsed_s": 1.0},
                                    {"step": 10, "train_loss": 5.0, "elapsed_s": 30.0},
                                    {"step": 20, "train_loss": 4.0, "elapsed_s": 60.0},
                                    {"step": 20, "val_loss": 4.5, "elapsed_s": 61.0}])
    for run in (codec, lm):
        out = plot_run(run)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(WavTokenizerError, match="no log.jsonl"):
        plot_run(tmp_path)
