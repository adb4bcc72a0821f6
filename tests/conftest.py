from __future__ import annotations

import os

# Under pytest-xdist each worker (and each process its tests start) gets its share of the cores: two workers running
# two-thread kernels on two cores spend much of their time waiting for each other. Set before torch is imported.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _CORES // _WORKERS)))

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavtokenizer_hf.convert import convert_original_checkpoint

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "assets" / "original_small"
CKPT = FIXTURE / "wavtokenizer_small_frame75.ckpt"
YAML = FIXTURE / "config_small_frame75.yaml"
KEYS_JSON = ROOT / "assets" / "original_keys.json"
# The peak resident memory (MB) of a script that a test runs in a subprocess, as an expression for that script. Not
# ru_maxrss: Linux carries the parent's peak across fork/vfork and exec, so a test process grown big by earlier tests
# (a pytest-xdist worker) would be measured instead of the script.
PEAK_RSS_MB = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024"


@pytest.fixture(autouse=True)
def ieee_subnormals():
    """Every test starts and ends with IEEE arithmetic on subnormal floats: a Trainer turns it off process-wide
    (`run.flush_denormal`), and a test that fails before `close()` would leave the next test in this worker without it."""
    import torch

    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="session")
def converted_dir(tmp_path_factory) -> Path:
    """The shared fixture converted once per session (read-only for tests: copy before modifying)."""
    out = tmp_path_factory.mktemp("converted") / "small75"
    convert_original_checkpoint(CKPT, YAML, out)
    return out


@pytest.fixture
def fixture_array():
    return lambda name: np.load(FIXTURE / f"{name}.npy")


def write_tone(path: Path, seconds: float = 0.5, rate: int = 24000, channels: int = 1, freq: float = 220.0) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3.1 * freq * t)
    data = np.stack([wave * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate)
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """A 0.02-hour corpus (about 70 s of audio), built once per session."""
    from wavtokenizer_hf.corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus") / "small"
    build_corpus(out, hours=0.02, seed=3, jobs=2)
    return out


MICRO = [  # a codec and discriminators small enough for many training steps in a test
    "model.num_filters=4", "model.hidden_size=16", "model.codebook_dim=16", "model.codebook_size=64",
    "model.decoder_hidden_size=32", "model.decoder_intermediate_size=64", "model.decoder_num_layers=1",
    "discriminators.mpd_channels=[4,4,4,4,4]", "discriminators.mrd_channels=4", "discriminators.dac_channels=4",
    "data.batch_size=4", "data.segment_seconds=0.5", "data.num_workers=0", "quantizer.kmeans_iterations=5",
    "quantizer.kmeans_batches=2", "quantizer.warmup_steps=0", "quantizer.dead_code_threshold=0.1",
    "run.log_every=1", "run.save_every=0", "optim.warmup_steps=0", "optim.lr=1e-3",
]
