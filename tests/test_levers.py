"""The lever benchmark (benchmarks/compare_levers.py): runs trained for the same CPU minutes, their timed snapshots
scored, one curve per run in one figure per lever, and a spec with mistakes refused before anything trains."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from conftest import MICRO, ROOT

SCRIPT = str(ROOT / "benchmarks" / "compare_levers.py")


def _spec(tmp_path, corpus, runs, levers):
    path = tmp_path / "levers.yaml"
    micro = [m for m in MICRO if not m.startswith(("data.num_workers", "run.save_every"))]
    path.write_text(yaml.safe_dump({"common": [f"data.train={corpus}", *micro], "runs": runs, "levers": levers}))
    return path


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_levers_are_trained_for_equal_cpu_minutes_scored_and_plotted(small_corpus, tmp_path):
    runs = {"plain": {"label": "mel only", "set": ["loss.gan_start_step=100000"]},
            "phase": {"label": "mel + phase", "set": ["loss.gan_start_step=100000", "loss.phase=5"]}}
    spec = _spec(tmp_path, small_corpus, runs, {"loss": ["plain", "phase"]})
    out = tmp_path / "out"
    done = _run("--spec", str(spec), "--out", str(out), "--minutes", "0.06", "--export-every", "0.03",
                "--eval-data", str(small_corpus), "--eval-split", "test", "--eval-limit", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    curves = json.loads((out / "levers.json").read_text())["curves"]
    for name in runs:
        rows = curves[name]
        minutes = [r["minutes"] for r in rows]
        assert minutes == sorted(minutes) and 0.055 < minutes[-1] < 0.2  # stopped by its CPU minutes
        assert len(rows) >= 2 and all(0 < r["stoi"] < 1 for r in rows)
        log = [json.loads(line) for line in open(out / "runs" / name / "log.jsonl")]
        assert all(r["clock"] == "cpu" for r in log if r.get("event") in ("export", "stop"))
    assert any("phase" in r for r in log if "step" in r and "event" not in r)  # the phase run used its term
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "levers.md").read_text()
    assert "| mel only |" in table and "| mel + phase |" in table
    again = _run("--spec", str(spec), "--out", str(out), "--minutes", "0.06", "--eval-data", str(small_corpus),
                 "--eval-split", "test", "--eval-limit", "1")
    assert again.returncode == 0 and "[train] plain" not in again.stdout  # finished runs are not trained again


def test_a_lever_naming_an_unknown_run_is_refused_before_training(small_corpus, tmp_path):
    spec = _spec(tmp_path, small_corpus, {"a": {"set": []}}, {"loss": ["a", "b"]})
    done = _run("--spec", str(spec), "--out", str(tmp_path / "out"), "--eval-data", str(small_corpus))
    assert done.returncode == 2 and "not in `runs`: b" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_run_id_that_is_not_a_folder_name_is_refused(small_corpus, tmp_path):
    spec = _spec(tmp_path, small_corpus, {"40 tokens/s": {"set": []}}, {"rate": ["40 tokens/s"]})
    done = _run("--spec", str(spec), "--out", str(tmp_path / "out"), "--eval-data", str(small_corpus))
    assert done.returncode == 2 and "names a folder" in done.stderr
