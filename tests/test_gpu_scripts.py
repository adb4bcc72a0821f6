"""The GPU scripts, run on the CPU with a tiny model: they work end to end before a GPU machine is ever lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT


def _run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run([str(ROOT / "scripts" / script), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_the_gpu_benchmark_script_measures_every_part_on_a_cpu(tmp_path):
    result = _run("gpu_bench.sh", str(tmp_path / "bench"), "--device", "cpu", "--tiny", "--clip-seconds", "1",
                  "--batch-sizes", "1", "2", "--long-minutes", "0.2", "--map-clips", "2", "--repeats", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    parts = json.loads((tmp_path / "bench" / "bench_gpu.json").read_text())["parts"]
    assert parts["throughput"]["best_encode_1s"]["codes_identical_in_every_row"] is True
    assert parts["throughput"]["1s_batch2"]["decode_max_abs_diff"] < 1e-4
    assert parts["long"]["result"]["streaming_equal_to_whole_file_first_10_min"] == 1.0
    assert parts["datasets_map"]["result"]["codes_identical"] is True


def test_the_gpu_benchmark_records_what_its_budget_did_not_reach(tmp_path):
    result = _run("gpu_bench.sh", str(tmp_path), "--device", "cpu", "--tiny", "--clip-seconds", "1",
                  "--batch-sizes", "1", "--budget-seconds", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    parts = json.loads((tmp_path / "bench_gpu.json").read_text())["parts"]
    assert parts["throughput"]["1s_batch1"].startswith("skipped: time budget")
    assert parts["long"]["status"].startswith("skipped") and parts["datasets_map"]["status"].startswith("skipped")
