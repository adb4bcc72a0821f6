"""The learning-rate schedule of both training loops (codec and LMs): linear warm-up, then cosine decay."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, max_steps: int, min_ratio: float, time_fraction: float = 0.0) -> float:
    """Multiplier of the peak learning rate at `step`: linear warm-up over `warmup_steps`, then cosine decay to
    `min_ratio` at `max_steps`. `time_fraction` (wall time used / time limit, 0 without a limit) makes the decay follow
    whichever of steps or time runs out first, so a run stopped by its time limit ends annealed, even one stopped
    during its warm-up."""
    time_fraction = min(1.0, max(0.0, time_fraction))
    progress = max(time_fraction, min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps)))
    decayed = min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if step < warmup_steps:
        return min((step + 1) / warmup_steps, decayed)
    return decayed
