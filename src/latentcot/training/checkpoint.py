"""Epoch checkpoints: weights (safetensors), config, tokenizer, optimizer, RNG states and progress.

Each checkpoint is written into a temporary directory and renamed into place, with ``state.json``
written last, so a run killed while saving leaves the previous checkpoints intact and never a
half-written one that looks complete.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from ..config import Config, save_config
from ..data.io import atomic_directory

STATE_FILE = "state.json"


def checkpoint_dir(output_dir: str | Path, epoch: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"epoch_{epoch:03d}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("epoch_*") if (p / STATE_FILE).exists())


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def resolve_run(path: str | Path) -> Path:
    """A checkpoint directory, or the newest checkpoint of a run directory."""
    path = Path(path)
    if (path / "config.json").exists():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path}: neither a checkpoint (no config.json) nor a run with checkpoints")
    return latest


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


def save_checkpoint(output_dir: str | Path, epoch: int, model, tokenizer, optimizer_state: dict, cfg: Config,
                    state: dict[str, Any], keep: int = 0, model_state: dict | None = None) -> Path:
    """``model_state`` replaces ``model.state_dict()`` when the live weights are sharded (FSDP)."""
    target = checkpoint_dir(output_dir, epoch)
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=model_state)
        tokenizer.save_pretrained(tmp)
        save_config(cfg, tmp / "config.yaml")
        torch.save(optimizer_state, tmp / "optimizer.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
    if keep > 0:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_state(path: Path) -> dict[str, Any]:
    return json.loads((path / STATE_FILE).read_text())
