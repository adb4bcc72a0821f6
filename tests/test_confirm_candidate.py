"""benchmarks/confirm_candidate.sh: it scores the snapshot its rule names, and never leaves the training run paused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "confirm_candidate.sh"


def _fake_run(tmp_path: Path, exports: list[tuple[str, float]]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": 100, "seconds": 1.0}] + [{"event": "export", "step": int(name[4:]), "path": name,
                                                "minutes": minutes, "clock": "cpu"} for name, minutes in exports]
    (run / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp_path / "corpus").mkdir()
    return run


def _confirm(tmp_path: Path, run: Path, minutes: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "SHARED": str(tmp_path / "no-shared")}
    return subprocess.run(["bash", str(SCRIPT), str(run), minutes, "candidate", str(tmp_path / "corpus")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_the_first_export_at_or_after_the_rules_minutes_is_the_one_scored(tmp_path):
    run = _fake_run(tmp_path, [("step0000900", 89.9), ("step0001000", 90.2), ("step0001300", 120.4)])
    result = _confirm(tmp_path, run, "90")
    # the fake snapshot is not a codec folder, so the float16 copy fails after the choice is printed
    assert f"confirm: {run}/step0001000, exported at 90.2 minutes" in result.stdout
    assert result.returncode != 0


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_a_paused_training_run_is_resumed_even_when_the_scoring_fails(tmp_path):
    run = _fake_run(tmp_path, [("step0001000", 120.0)])
    # a stand-in for the training process: its command line names the run the way train_codec.py's does
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "--out", str(run)])
    try:
        result = _confirm(tmp_path, run, "120")
        assert "exported at 120.0 minutes" in result.stdout and result.returncode != 0
        assert "no running process trains" not in result.stdout, "the run was never paused"
        time.sleep(0.2)
        assert _state(trainer.pid) != "T", "the run was left stopped"
    finally:
        trainer.kill()


def test_a_folder_without_a_training_log_is_refused(tmp_path):
    result = _confirm(tmp_path, tmp_path, "120")
    assert result.returncode == 2 and "no " in result.stdout and "log.jsonl" in result.stdout


def test_a_confirm_cut_off_resumes_at_the_first_set_not_yet_scored_and_scores_the_shared_sets_first(tmp_path):
    run = _fake_run(tmp_path, [("step0001000", 120.0)])
    shared = tmp_path / "shared"
    for name in ("tts_samples", "real_speech"):
        (shared / name).mkdir(parents=True)
    done = tmp_path / "runs" / "confirm" / "candidate" / "tts_samples"
    done.mkdir(parents=True)
    (done / "evaluation.json").write_text("{}")
    calls = tmp_path / "calls.txt"
    # a stand-in interpreter: real Python for the script's inline log reader, a line per call for everything else
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = "-" ]; then exec {sys.executable} "$@"; fi\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "SHARED": str(shared)}
    result = subprocess.run(["bash", str(SCRIPT), str(run), "120", "candidate", str(tmp_path / "corpus")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = calls.read_text().splitlines()
    evaluated = [line.split("--out ")[1] for line in lines if "evaluate_codec.py" in line]
    assert evaluated == ["runs/confirm/candidate/real_speech", "runs/confirm/candidate/test"]
    assert "half-weights" in lines[0] and "--overwrite" in lines[0], "a rerun must remake the same float16 copy"
    assert "already scored" in result.stdout
