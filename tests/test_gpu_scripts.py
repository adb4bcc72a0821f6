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
    exact = parts["exactness"]["result"]
    assert exact["batched_equal_to_single"] and exact["streaming_equal_to_whole_90s"]
    assert exact["long_decode_max_abs_diff_to_stock"] < 2e-6
    assert parts["throughput"]["best_encode_1s"]["codes_identical_in_every_row"] is True
    assert parts["throughput"]["1s_batch2"]["decode_max_abs_diff"] < 1e-4
    assert parts["long"]["result"]["streaming_equal_to_whole_file_first_10_min"] == 1.0
    assert parts["datasets_map"]["result"]["codes_identical"] is True


def test_the_gpu_benchmark_records_what_its_budget_did_not_reach(tmp_path):
    result = _run("gpu_bench.sh", str(tmp_path), "--device", "cpu", "--tiny", "--clip-seconds", "1",
                  "--batch-sizes", "1", "--budget-seconds", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert results["command"].endswith("--device cpu --tiny --clip-seconds 1 --batch-sizes 1 --budget-seconds 0")
    parts = results["parts"]
    assert parts["throughput"]["1s_batch1"].startswith("skipped: time budget")
    assert parts["exactness"]["result"]["batched_equal_to_single"] is True  # run whatever the budget
    assert parts["long"]["status"].startswith("skipped") and parts["datasets_map"]["status"].startswith("skipped")


def test_the_gpu_training_script_trains_on_a_shard_packs_as_it_goes_and_unpacks_here(small_corpus, tmp_path):
    import importlib.util

    from transformers import AutoModel

    spec = importlib.util.spec_from_file_location("make_gpu_shard", ROOT / "scripts" / "make_gpu_shard.py")
    shard_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shard_module)
    shard_module.make_shard(small_corpus, tmp_path / "shard", hours=0.005, test_limit=2, seed=0)
    out = tmp_path / "out"
    # 0.4 wall-clock minutes: on busy cores 0.2 left no snapshot packed before the final one
    result = _run("gpu_train.sh", str(out), "--minutes", "0.4", "--shard", str(tmp_path / "shard"), "--batch-size",
                  "4", "--workers", "0", "--eval-limit", "2", "--pack-every", "3", "--set", "run.log_every=1",
                  "--set", "run.export_every_minutes=0.05", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    packed = [line for line in result.stdout.splitlines() if " packed " in line]
    assert packed[0].endswith(tuple("0123456789")) and packed[-1].endswith("packed final")  # snapshots, then final
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in out.rglob("*") if p.is_file())
    assert not any(name.startswith(".") for name in files)  # nothing half-written left behind
    unpacked = _run("gpu_train.sh", "--unpack", str(out), str(tmp_path / "codec"))
    assert unpacked.returncode == 0, unpacked.stderr
    AutoModel.from_pretrained(tmp_path / "codec")  # stock transformers loads what came back
    (out / "codec" / "model.safetensors.part-aa").write_bytes(b"corrupted in transit")
    assert _run("gpu_train.sh", "--unpack", str(out), str(tmp_path / "codec2")).returncode != 0
    assert not (tmp_path / "codec2").exists()
    scores = json.loads((out / "evaluation.json").read_text())
    assert len(scores["codecs"]) == 2
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any(row.get("step", 0) >= 1 for row in steps)
    assert any("phone_ce" in row for row in steps)  # the recipe of `make keep-training`: the phone teacher is on


def test_a_benchmark_row_where_the_stock_model_fails_records_the_failure_and_still_times_ours(monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_gpu
    import torch

    torch.manual_seed(0)
    model = bench_gpu.build_model(type("Args", (), {"model": None, "tiny": True, "device": "cpu"})())
    fast = bench_gpu.FastWavTokenizer(model)

    def refuse(*args, **kwargs):  # what the stock encoder said on an H100 for 64 clips of 60 s
        raise RuntimeError("input tensor must fit into 32-bit index math\nmore")

    monkeypatch.setattr(model, "encode", refuse)
    row = bench_gpu.throughput_row(model, fast, torch.randn(2, bench_gpu.RATE) * 0.1, repeats=1, device="cpu")
    assert row["failed"] == {"encode_stock": "RuntimeError: input tensor must fit into 32-bit index math"}
    assert row["batch"] == 2 and row["encode_ours_x_real_time"] > 0 and row["decode_stock_x_real_time"] > 0
    assert "encode_stock_x_real_time" not in row and "codes_identical" not in row
