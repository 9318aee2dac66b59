"""The learning-rate schedule, shared by the LM trainer and the VQ-VAE trainer."""

from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str, warmup_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based); a pure function of the step, so resuming
    needs no scheduler state."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "cosine" and total_steps > warmup_steps:
        progress = min((step - warmup_steps) / (total_steps - warmup_steps), 1.0)
        return base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return base_lr
