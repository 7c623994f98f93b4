"""Training: one loop for E2E, GLL and ContSup, with crash-safe run directories."""

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .trainer import Trainer, learning_rate, load_run, train

__all__ = ["DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "Trainer", "learning_rate", "load_run", "train"]
