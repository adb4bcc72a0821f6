"""Codec training: trainable VQ, discriminators, losses, data, and the accelerate training loop."""

from .config import TrainConfig, load_train_config
from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "load_train_config"]
