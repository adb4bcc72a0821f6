"""The phone teacher: frame labels from the corpus's phone timings and a training-only head on the quantised
latents that predicts them (cross-entropy), so the codes learn what was said, not only how it sounded.

The inventory is the union of the backends' labels (espeak-ng's, Flite's and Festival's sets; a label two backends
share is one class). Rows without timings, and frames between timed phones, carry no label (IGNORE). The head lives
on the generator module for training only: the exported codec stays a stock `WavTokenizerModel`.
"""

from __future__ import annotations

import bisect

import numpy as np
import torch
from torch import nn

IGNORE = -100  # cross-entropy's ignore_index


def phone_inventory(rows_phones) -> list[str]:
    """Every label that occurs in the rows' `phones` ([{phone, start, end}, ...] per row), sorted."""
    return sorted({p["phone"] for phones in rows_phones for p in (phones or [])})


class TimedPhones:
    """One row's phones as arrays, for looking up the phone at a time."""

    def __init__(self, phones: list[dict], index: dict[str, int]):
        ordered = sorted(phones or [], key=lambda p: p["start"])
        self.starts = [float(p["start"]) for p in ordered]
        self.ends = np.array([float(p["end"]) for p in ordered])
        self.classes = np.array([index.get(p["phone"], IGNORE) for p in ordered], dtype=np.int64)

    def __bool__(self) -> bool:
        return bool(self.starts)

    def at(self, seconds: np.ndarray) -> np.ndarray:
        """The class of the phone sounding at each time (IGNORE outside every phone)."""
        labels = np.full(seconds.shape, IGNORE, dtype=np.int64)
        for k, t in enumerate(seconds):
            i = bisect.bisect_right(self.starts, t) - 1
            if i >= 0 and t < self.ends[i]:
                labels[k] = self.classes[i]
        return labels


def frame_labels(phones: TimedPhones, clip_samples: int, start: int, frames: int, hop: int, speed: float,
                 rate: int) -> torch.Tensor:
    """Labels of the `frames` codec frames of a crop that begins `start` samples into a clip of `clip_samples`
    (repeated when the crop runs past its end, as the crops are) and plays `speed` times faster: frame t's centre
    is (t + 0.5) x hop output samples, that is start + (t + 0.5) x hop x speed samples into the repeated clip."""
    if not phones:
        return torch.full((frames,), IGNORE, dtype=torch.long)
    positions = (start + (np.arange(frames) + 0.5) * hop * speed) % clip_samples
    return torch.from_numpy(phones.at(positions / rate))


class PhoneHead(nn.Module):
    """Quantised latents (B, D, F) -> phone logits (B, F, classes): a linear read-out of the layer-normalised
    latents (the codebook's scale is the codec's business, not the teacher's)."""

    def __init__(self, dim: int, classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, classes)

    def forward(self, quantized: torch.Tensor) -> torch.Tensor:
        # float32 whatever the generator's autocast made of the latents (the head runs outside it)
        return self.proj(self.norm(quantized.transpose(1, 2).float()))


def phone_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy over labelled frames, their accuracy); both 0 when no frame of the batch is labelled
    (no host sync either way)."""
    frames = min(logits.shape[1], labels.shape[1])
    logits, labels = logits[:, :frames].float(), labels[:, :frames]
    labelled = labels != IGNORE
    count = labelled.sum().clamp(min=1)
    per_frame = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                            ignore_index=IGNORE, reduction="none").reshape(labels.shape)
    accuracy = ((logits.argmax(-1) == labels) & labelled).sum() / count
    return per_frame.sum() / count, accuracy.detach()
