"""Checkpoints: weights (safetensors), config, tokenizer, optimizer, RNG states and progress.

One is written at the end of each epoch (``epoch_003``) and, with ``train.save_every_steps`` or
``train.save_every_minutes``, inside an epoch too (``epoch_002_step_00001500``: two epochs done, 1500
optimizer steps taken); names sort in training order, so the newest is the one to resume from. An
epoch's own checkpoint supersedes its mid-epoch ones, which are then deleted.

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


def checkpoint_dir(output_dir: str | Path, epoch: int, step: int | None = None) -> Path:
    """``epoch`` counts completed epochs; ``step`` marks a checkpoint taken inside the next one."""
    name = f"epoch_{epoch:03d}" if step is None else f"epoch_{epoch:03d}_step_{step:08d}"
    return Path(output_dir) / "checkpoints" / name


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
                    state: dict[str, Any], keep: int = 0, model_state: dict | None = None,
                    step: int | None = None) -> Path:
    """``model_state`` replaces ``model.state_dict()`` when the live weights are sharded (FSDP);
    ``step`` makes it a mid-epoch checkpoint (see :func:`checkpoint_dir`)."""
    target = checkpoint_dir(output_dir, epoch, step)
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=model_state)
        tokenizer.save_pretrained(tmp)
        save_config(cfg, tmp / "config.yaml")
        torch.save(optimizer_state, tmp / "optimizer.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
    if step is None:
        # The epoch is complete: its mid-epoch checkpoints (taken while it ran) are superseded.
        for partial in Path(output_dir, "checkpoints").glob(f"epoch_{epoch - 1:03d}_step_*"):
            shutil.rmtree(partial, ignore_errors=True)
    if keep > 0:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_state(path: Path) -> dict[str, Any]:
    return json.loads((path / STATE_FILE).read_text())
