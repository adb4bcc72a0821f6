from __future__ import annotations

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
