"""benchmarks/bench_train_precision.py: every measurement process gets the recipe's settings and the shapes asked
for, and a malformed shape is one clear line."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_train_precision.py"


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # it imports bench_inference from its own folder
    return runpy.run_path(str(SCRIPT))


def test_each_measurement_process_gets_the_settings_and_the_shape_asked_for(script, monkeypatch, tmp_path):
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        row = {"precision": command[-3], "segment_seconds": float(command[-2]), "batch_size": int(command[-1])}
        return subprocess.CompletedProcess(command, 0, stdout="noise\nRESULT " + json.dumps(row) + "\n", stderr="")

    monkeypatch.setitem(script["main"].__globals__, "subprocess", type("S", (), {"run": staticmethod(fake_run)}))
    monkeypatch.setitem(script["main"].__globals__, "cpu_has_bf16", lambda: True)
    out = tmp_path / "result.json"
    monkeypatch.setattr(sys, "argv", ["bench", "--data", "d", "--shape", "0.5x16", "--set", "loss.phones=1.0",
                                      "--set", "run.flush_denormal=false", "--out", str(out)])
    script["main"]()
    assert [c[-3:] for c in commands] == [["no", "0.5", "16"], ["bf16", "0.5", "16"]]
    assert all("--set=loss.phones=1.0" in c and "--set=run.flush_denormal=false" in c for c in commands)
    result = json.loads(out.read_text())
    assert result["settings"] == ["loss.phones=1.0", "run.flush_denormal=false"] and len(result["rows"]) == 2


def test_the_recipes_settings_come_before_the_benchmarks_own_so_the_measured_shape_wins(script, monkeypatch):
    seen = []

    class Stop(Exception):
        pass

    def fake_config(preset, overrides):
        seen.extend(overrides)
        raise Stop

    monkeypatch.setitem(script["measure"].__globals__, "load_train_config", fake_config)
    with pytest.raises(Stop):
        script["measure"]("d", "bf16", 0.5, 16, 30, ["data.batch_size=4", "loss.phones=1.0"])
    assert seen[:2] == ["data.batch_size=4", "loss.phones=1.0"]
    assert "data.batch_size=16" in seen[2:] and "run.mixed_precision=bf16" in seen[2:]


@pytest.mark.parametrize("text, shape", [("1.0x8", (1.0, 8)), ("0.5X16", (0.5, 16))])
def test_a_shape_is_seconds_by_batch(script, text, shape):
    assert script["parse_shape"](text) == shape


@pytest.mark.parametrize("text", ["1.0", "1.0x8.5", "ax8", "1x2x3"])
def test_a_malformed_shape_is_one_clear_line(script, text):
    with pytest.raises(SystemExit, match="expected SECONDSxBATCH"):
        script["parse_shape"](text)
