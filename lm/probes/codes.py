"""One codec's (or baseline's) codes for every probed utterance."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import ProbeUtterance


@dataclass
class CodedSet:
    """Codes for every utterance, on frames of `frame_rate` per second of audio at `sampling_rate`; `path`: the codec
    directory they came from (None for baselines), for whoever needs to decode them."""

    name: str
    codes: list[np.ndarray]
    frame_rate: float
    codebook_size: int
    step: int | None = None
    kind: str = "codec"  # codec | baseline
    sampling_rate: int | None = None
    path: Path | None = None


def codec_step(path: Path) -> int | None:
    """Training step of a codec this package trained: its folder name (stepNNNNNNN) or its model card."""
    match = re.fullmatch(r"step(\d+)", path.name)
    if match:
        return int(match.group(1))
    card = path / "README.md"
    if card.exists():
        match = re.search(r"for (\d+) steps", card.read_text())
        if match:
            return int(match.group(1))
    return None


def encode_with(name: str, path: Path, utterances: list[ProbeUtterance]) -> CodedSet:
    """Encode every utterance with the codec at `path` (the codec is not kept)."""
    from wavtokenizer_hf.codec import Codec

    codec = Codec.from_pretrained(path)
    codes = []
    for u in tqdm(utterances, desc=f"encode ({name})", unit="utt", leave=False):
        codes.append(codec.encode(u.waveform[None], u.rate).audio_codes[0].numpy().astype(np.int64))
    return CodedSet(name, codes, codec.frame_rate, codec.codebook_size, codec_step(Path(path)), "codec",
                    codec.sampling_rate, Path(path))
