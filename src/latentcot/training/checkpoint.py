"""Checkpoints: weights (safetensors), config, tokenizer, optimizer, RNG states and progress.

One is written at the end of each epoch (``epoch_003``) and, with ``train.save_every_steps`` or
``train.save_every_minutes``, inside an epoch too (``epoch_002_step_00001500``: two epochs done, 1500
optimizer steps taken); names sort in training order (see :mod:`latentcot.runs`). An epoch's own checkpoint supersedes its mid-epoch ones, which are then deleted.

Each checkpoint is written into a temporary directory and renamed into place, with ``state.json``
written last, so a run killed while saving leaves the previous checkpoints intact and never a
half-written one that looks complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ..config import Config, save_config
from ..data.io import atomic_directory
from ..runs import STATE_FILE, CheckpointError, checkpoint_dir, list_checkpoints, load_state
from ..runtime import rng_state


def save_checkpoint(output_dir: str | Path, epoch: int, model, tokenizer, optimizer_state: dict, cfg: Config,
                    state: dict[str, Any], keep: int = 0, model_state: dict | None = None,
                    step: int | None = None, side_modules: dict | None = None) -> Path:
    """``model_state`` replaces ``model.state_dict()`` when the live weights are sharded (FSDP);
    ``step`` makes it a mid-epoch checkpoint (see :func:`checkpoint_dir`). ``side_modules`` (a method's
    trainable modules beside the model: SIM-CoT's step decoder) go in subdirectories of their names, which
    ``latentcot export`` does not copy."""
    target = checkpoint_dir(output_dir, epoch, step)
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=model_state)
        for name, module in (side_modules or {}).items():
            module.save_pretrained(tmp / name, safe_serialization=True)
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


def check_checkpoint(path: Path) -> None:
    """Raise :class:`~latentcot.runs.CheckpointError` naming the first file of a training checkpoint
    that is missing or does not load (weights, optimizer, RNG state, progress)."""
    from ..models.factory import check_weights

    check_weights(path)
    for name in ("optimizer.pt", "rng.pt"):
        try:
            torch.load(path / name, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise CheckpointError(f"{path / name}: missing") from None
        except Exception as err:  # unpickling errors come in many types
            raise CheckpointError(f"{path / name}: corrupt or partial checkpoint file ({err})") from err
    try:
        load_state(path)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path / STATE_FILE}: corrupt or partial checkpoint file ({err})") from err
