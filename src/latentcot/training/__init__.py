"""Training: the trainer, checkpoints, metrics, and multi-process set-up."""

from .trainer import Trainer, train

__all__ = ["Trainer", "train"]
