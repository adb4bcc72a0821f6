"""Tokenizing on a real multi-node Ray cluster started on this machine (a head and two worker nodes, loopback only):
every input row exactly once with the codes `Codec.encode` gives its file alone, a lost node survived, reruns that
write nothing twice, and one clear line for each kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT

ray = pytest.importorskip("ray", reason='the Ray engine is optional: pip install "wavtokenizer-hf[ray]"')

MODEL = ROOT / "wavtokenizer_hf" / "default_codec"
SCRIPT = str(ROOT / "scripts" / "tokenize_dataset.py")
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # every Ray process binds 127.0.0.1, never the LAN address


def write_inputs(folder: Path, files: list[tuple[float, int, int]], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for number, (seconds, rate, channels) in enumerate(files):
        t = np.arange(int(seconds * rate)) / rate
        wave = 0.3 * np.sin(2 * np.pi * (120 + 17 * number) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        wave = wave + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / f"f{number:03d}.wav",
                 np.stack([wave * (1 - 0.2 * c) for c in range(channels)], 1).astype(np.float32), rate)


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in LOOPBACK}
    os.environ.update(LOOPBACK)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    cluster.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def codec():
    from wavtokenizer_hf.codec import Codec

    return Codec.from_pretrained(MODEL)


def run_script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **LOOPBACK}, cwd=ROOT)


def rows_of(out: Path) -> dict[str, list[int]]:
    import pyarrow.parquet as pq

    rows: dict[str, list[int]] = {}
    for part in sorted((out / "shard-00000-of-00001").glob("part-*.parquet")):
        for id_, codes in zip(*pq.read_table(part, columns=["id", "audio_codes"]).to_pydict().values()):
            assert id_ not in rows, f"{id_} written twice"
            rows[id_] = codes
    return rows


def expected_codes(codec, folder: Path) -> dict[str, list[int]]:
    """`Codec.encode` of each file alone, with one thread as the encoder actors (another thread count can round a
    near-tie frame to the other code)."""
    import torch

    from wavtokenizer_hf.audio_io import read_audio

    out, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for path in sorted(p for p in folder.glob("*.wav") if p.name != "broken.wav"):
            wave, rate = read_audio(path)
            out[path.name] = codec.encode(wave, rate).audio_codes[0].tolist()
    finally:
        torch.set_num_threads(threads)
    return out


def test_a_job_on_a_separately_started_cluster_writes_every_row_once_with_exact_codes(cluster, codec, tmp_path):
    inputs = tmp_path / "in"
    write_inputs(inputs, [(1.5, 24000, 1), (3.2, 16000, 2), (0.7, 44100, 1), (61.0, 24000, 1), (2.0, 22050, 1)])
    (inputs / "broken.wav").write_bytes(b"RIFF, but no audio")
    out = tmp_path / "out"
    done = run_script(str(inputs), str(out), "--model", str(MODEL), "--engine", "ray",
                      "--address", cluster[0].address, "--rows-per-part", "2", "--batch-size", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["parts_written"] == 3 and summary["files_skipped"] == 1
    assert rows_of(out) == expected_codes(codec, inputs)  # the 61 s file took the streaming path
    complete = json.loads((out / "shard-00000-of-00001" / "_COMPLETE.json").read_text())
    assert [s["id"] for s in complete["skipped"]] == ["broken.wav"] and "not readable" in complete["skipped"][0]["reason"]
    check = run_script(str(inputs), str(out), "--num-shards", "1", "--check")
    assert check.returncode == 0 and json.loads(check.stdout)["ok"]

    (out / "shard-00000-of-00001" / "part-00001.parquet").unlink()  # as if killed before that part
    again = run_script(str(inputs), str(out), "--model", str(MODEL), "--engine", "ray", "--address",
                       cluster[0].address, "--rows-per-part", "2", "--batch-size", "2")
    assert json.loads(again.stdout[again.stdout.index("{"):])["parts_written"] == 1  # that part only: nothing twice
    assert rows_of(out) == expected_codes(codec, inputs)  # nothing lost


def test_a_worker_node_lost_mid_job_loses_no_row_and_duplicates_none(cluster, codec, tmp_path):
    head, workers = cluster
    inputs = tmp_path / "in"
    write_inputs(inputs, [(1.0 + 0.1 * (i % 5), 24000, 1) for i in range(24)], seed=1)
    out = tmp_path / "out"
    job = subprocess.Popen([sys.executable, SCRIPT, str(inputs), str(out), "--model", str(MODEL), "--engine", "ray",
                            "--address", head.address, "--rows-per-part", "2", "--batch-size", "1",
                            "--encoders", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, **LOOPBACK}, cwd=ROOT)
    shard = out / "shard-00000-of-00001"
    deadline = time.time() + 300
    while not list(shard.glob("part-*.parquet")) and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)
    parts_before = len(list(shard.glob("part-*.parquet")))
    assert job.poll() is None and 0 < parts_before < 12, "the job should be mid-way when the node goes"
    cluster_node = workers[0]
    threading.Thread(target=head.remove_node, args=(cluster_node,)).start()
    replacement = head.add_node(num_cpus=2)  # the cluster gets a node back, as an autoscaler would
    stdout, stderr = job.communicate(timeout=600)
    workers[0] = replacement
    assert job.returncode == 0, stderr[-3000:]
    assert rows_of(out) == expected_codes(codec, inputs)


def bad_input(*args: str) -> tuple[int, list[str]]:
    """Exit status and stderr's lines of our own (not Ray's log lines nor the progress bar)."""
    done = run_script(*args, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.strip().splitlines()
             if line.strip() and not line.startswith(("Token authentication", "ray tokenize:", "[20", "20"))]
    return done.returncode, lines


def test_bad_input_gets_one_clear_line_and_writes_nothing(cluster, tmp_path):
    from wavtokenizer_hf.errors import WavTokenizerError
    from wavtokenizer_hf.ray_tokenize import tokenize_with_ray

    inputs = tmp_path / "in"
    write_inputs(inputs, [(1.0, 24000, 1)])
    free_port = _free_port()
    code, lines = bad_input(str(inputs), str(tmp_path / "a"), "--model", str(MODEL), "--engine", "ray",
                            "--address", f"127.0.0.1:{free_port}")
    assert code == 2 and len(lines) == 1 and f"no Ray cluster answers at 127.0.0.1:{free_port}" in lines[0]
    address = cluster[0].address
    with pytest.raises(WavTokenizerError, match="input not found"):
        tokenize_with_ray(tmp_path / "missing", tmp_path / "b", MODEL, address)
    with pytest.raises(WavTokenizerError, match="no codec at"):
        tokenize_with_ray(inputs, tmp_path / "c", tmp_path, address)
    with pytest.raises(WavTokenizerError, match="expected HOST:PORT"):
        tokenize_with_ray(inputs, tmp_path / "c", MODEL, "ray://somewhere")
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))
    other = tmp_path / "other"
    write_inputs(other, [(1.0, 24000, 1), (1.2, 24000, 1)], seed=5)
    from wavtokenizer_hf.tokenization import tokenize_shard

    tokenize_shard(other, tmp_path / "d", MODEL)  # another job's output
    with pytest.raises(WavTokenizerError, match="was started with other"):
        tokenize_with_ray(inputs, tmp_path / "d", MODEL, address)


def test_a_model_that_does_not_load_on_the_workers_stops_the_job_with_one_line(cluster, tmp_path):
    import shutil

    inputs = tmp_path / "in"
    write_inputs(inputs, [(1.0, 24000, 1)])
    broken = tmp_path / "model"
    shutil.copytree(MODEL, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "codebook_size": 2 * config["codebook_size"]}))
    code, lines = bad_input(str(inputs), str(tmp_path / "out"), "--model", str(broken), "--engine", "ray",
                            "--address", cluster[0].address)  # weights that do not fit their config
    assert code == 2 and len(lines) == 1 and "the Ray job failed" in lines[0]
    assert not list((tmp_path / "out").rglob("part-*.parquet"))
    (broken / "model.safetensors").write_bytes(b"not weights")  # caught before the job starts
    code, lines = bad_input(str(inputs), str(tmp_path / "out2"), "--model", str(broken), "--engine", "ray",
                            "--address", cluster[0].address)
    assert code == 2 and len(lines) == 1 and "not a readable safetensors file" in lines[0]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_parquet_files_and_uris_are_inputs_too(cluster, codec, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from wavtokenizer_hf.ray_tokenize import list_sources, tokenize_with_ray

    inputs = tmp_path / "in"
    write_inputs(inputs, [(1.0, 24000, 1), (1.4, 16000, 2), (0.9, 24000, 1)], seed=7)
    expected = expected_codes(codec, inputs)
    names = sorted(expected)
    table = pa.table({"id": names, "audio": [{"bytes": (inputs / n).read_bytes(), "path": n} for n in names]})
    pq.write_table(table, tmp_path / "audio.parquet")
    assert list_sources(f"file://{inputs}")[0] == names  # a URI folder lists its audio files
    for source, out in ((tmp_path / "audio.parquet", tmp_path / "from_parquet"), (f"file://{inputs}", tmp_path / "from_uri")):
        try:
            tokenize_with_ray(source, out, MODEL, cluster[0].address, rows_per_part=2, progress=False)
            assert not ray.is_initialized()  # the call connected this process and disconnected it
        finally:
            ray.shutdown()
        assert rows_of(out) == expected
    ray.init(address=cluster[0].address)  # a caller's own connection is left as it was
    try:
        tokenize_with_ray(tmp_path / "audio.parquet", tmp_path / "own", MODEL, None, rows_per_part=2, progress=False)
        assert ray.is_initialized() and rows_of(tmp_path / "own") == expected
    finally:
        ray.shutdown()
