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
