"""Per-clip arrays computed once per set of training clips (teacher features, pitch tracks) and kept on disk, keyed
by a hash of every clip's stored bytes and a salt naming what was computed, so a resumed or repeated run reads them
back and a changed corpus or method computes them anew."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import WavTokenizerError


def clips_key(clip_bytes: list[bytes], salt: str) -> str:
    """A hash of the salt and every clip's bytes, in order."""
    digest = hashlib.sha256(salt.encode())
    for data in clip_bytes:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()[:20]


def cached_per_clip(source, directory: str | Path, salt: str,
                    compute: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
    """One array per clip of a `ClipSource`: read from `directory` when cached under this salt, else `compute()`
    (one array per clip, concatenated along their first axis to be stored) and cached."""
    from safetensors.numpy import load_file, save_file

    path = Path(directory) / f"{clips_key([source.raw_bytes(i) for i in range(len(source))], salt)}.safetensors"
    if path.exists():
        try:
            stored = load_file(path)
            offsets, values = stored["offsets"], stored["values"]
        except Exception as err:  # a truncated or foreign file: safetensors' own message names neither
            raise WavTokenizerError(f"{path}: unreadable cache file ({type(err).__name__}: {err}); delete it and "
                                    "it is computed again") from err
        if len(offsets) != len(source) + 1:
            raise WavTokenizerError(f"{path}: holds {len(offsets) - 1} clips, not {len(source)}; delete it")
        return [values[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    arrays = compute()
    if len(arrays) != len(source):
        raise WavTokenizerError(f"computed {len(arrays)} arrays for {len(source)} clips")
    offsets = np.cumsum([0] + [len(a) for a in arrays]).astype(np.int64)
    with atomic_path(path, overwrite=True) as tmp:
        save_file({"values": np.concatenate(arrays), "offsets": offsets}, str(tmp))
    return arrays
