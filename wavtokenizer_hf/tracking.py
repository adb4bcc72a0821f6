"""Experiment trackers through accelerate (`log_with`: tensorboard, trackio, wandb, ... whatever is installed)."""

from __future__ import annotations

from typing import Any

from .errors import WavTokenizerError


def flat_config(values: dict[str, Any], prefix: str = "") -> dict[str, int | float | str | bool]:
    """Nested config -> dotted scalar keys (trackers such as TensorBoard's hparams take scalars only)."""
    out: dict[str, int | float | str | bool] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, name + "."))
        elif isinstance(value, (int, float, str, bool)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def check_tracker(log_with: str | None) -> str | None:
    """Fail early, with the fix, when the requested tracker's package is missing."""
    if not log_with:
        return None
    from accelerate.utils import is_tensorboard_available, is_trackio_available, is_wandb_available

    checks = {"tensorboard": is_tensorboard_available, "trackio": is_trackio_available, "wandb": is_wandb_available}
    if log_with in checks and not checks[log_with]():
        raise WavTokenizerError(f"log_with={log_with}: the package is not installed (pip install {log_with})")
    return log_with


def numeric(record: dict) -> dict[str, float]:
    return {k: float(v) for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
