"""The scripts' shared behaviour: bad input is one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("script, args, message", [
    ("evaluate_codec.py", ["--identity", "--data", "/nonexistent/test-set"], "test set not found"),
    ("evaluate_codec.py", ["--merge", "/nonexistent/evaluation"], "no evaluation.json"),
    ("evaluate_codec.py", ["--identity"], "--data is needed"),
    ("tokenize_dataset.py", ["/nonexistent/audio", "/tmp/never-written"], "not found"),
    ("plot_training.py", ["/nonexistent/run"], "no log.jsonl"),
    ("build_corpus.py", ["--out", "/tmp/never-written", "--espeak-only", "--test-speakers", "nobody"],
     "test speakers with no English voice here: nobody"),
])
def test_a_script_given_bad_input_prints_one_error_line_and_exits_2(script, args, message):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                            timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert lines[-1].startswith(f"{script[:-3]}: error: ") and message in lines[-1]
    assert "Traceback" not in result.stderr
