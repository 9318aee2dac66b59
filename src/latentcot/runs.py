"""The layout of a run directory: ``checkpoints/epoch_NNN[_step_SSSSSSSS]/`` with ``state.json`` written last.

Checkpoint names sort in training order, so the newest is the one to resume from. Only paths and the
small state file are handled here (no torch), so that anything that reads a run, the tokenizer loader
included, can use it without importing the trainer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import CheckpointError, MissingFileError  # CheckpointError re-exported: it was defined here

STATE_FILE = "state.json"


class TrainingStopped(Exception):
    """Training stopped at a safe point on SIGINT (Ctrl-C) or SIGTERM; running the same command resumes."""

    def __init__(self, signal_name: str, checkpoint: Path | None, exit_code: int):
        where = f"; last checkpoint {checkpoint}" if checkpoint else ""
        super().__init__(f"stopped on {signal_name}{where}; run the same command again to resume")
        self.checkpoint = checkpoint
        self.exit_code = exit_code


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
        raise MissingFileError(f"{path}: neither a checkpoint (no config.json) nor a run with checkpoints")
    return latest


def load_state(path: Path) -> dict[str, Any]:
    """A checkpoint's ``state.json``; one that is missing or garbled is a :class:`CheckpointError` naming it."""
    file = path / STATE_FILE
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{file}: corrupt or partial checkpoint file ({err})") from None
