"""Process-wide helpers every command needs: which device to run on, seeding, and RNG state.

They live here, below every other module, so that training, inference, the VQ-VAE and the CLI can use
them without importing one another.
"""

from __future__ import annotations

import random
from typing import Any

import torch


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is the process's GPU (``local_rank`` under torchrun) when there is one, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
