"""The per-clip cache shared by the Whisper and pitch teachers."""

from __future__ import annotations

import numpy as np
import pytest

from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.training.clip_cache import cached_per_clip


class Clips:
    def __init__(self, *data: bytes):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def raw_bytes(self, index: int) -> bytes:
        return self.data[index]


def test_arrays_are_computed_once_and_read_back_clip_by_clip(tmp_path):
    calls = []
    arrays = [np.arange(3, dtype=np.float32), np.arange(5, dtype=np.float32) * 2]
    compute = lambda: calls.append(1) or arrays  # noqa: E731
    first = cached_per_clip(Clips(b"a", b"b"), tmp_path, "salt", compute)
    again = cached_per_clip(Clips(b"a", b"b"), tmp_path, "salt", compute)
    assert len(calls) == 1 and all(np.array_equal(a, b) for a, b in zip(first, again))
    assert [len(a) for a in again] == [3, 5]


def test_a_damaged_cache_file_is_named_with_what_to_do(tmp_path):
    cached_per_clip(Clips(b"a"), tmp_path, "salt", lambda: [np.zeros(4, dtype=np.float32)])
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:40])  # cut short, as by a full disk
    with pytest.raises(WavTokenizerError, match=f"{path.name}: unreadable cache file .*delete it"):
        cached_per_clip(Clips(b"a"), tmp_path, "salt", lambda: [np.zeros(4, dtype=np.float32)])
