"""Codec training: trainable VQ, discriminators, losses, data, and the accelerate training loop."""

from ..extras import require

require("accelerate", "codec training")

from .config import TrainConfig, load_train_config
from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "load_train_config"]
