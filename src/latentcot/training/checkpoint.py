"""Checkpoints: weights (safetensors), config, tokenizer, optimizer, RNG states and progress.

One is written at the end of each epoch (``epoch_003``) and, with ``train.save_every_steps`` or
``train.save_every_minutes``, inside an epoch too (``epoch_002_step_00001500``: two epochs done, 1500
optimizer steps taken); names sort in training order (see :mod:`latentcot.runs`). An epoch's own checkpoint supersedes its mid-epoch ones, which are then deleted.

Each checkpoint is written into a temporary directory and renamed into place, with ``state.json``
written last, so a run killed while saving leaves the previous checkpoints intact and never a
half-written one that looks complete.
"""

from __future__ import annotations

import errno
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import Config, save_config
from ..data.io import atomic_directory
from ..runs import STATE_FILE, CheckpointError, checkpoint_dir, list_checkpoints
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


@dataclass
class Resumable:
    """A training checkpoint whose files all read back: what resuming needs besides the model."""
    path: Path
    state: dict[str, Any]
    optimizer: dict
    rng: dict


def checkpoint_candidates(output_dir: str | Path) -> list[Path]:
    """Every ``epoch_*`` directory, oldest first, including one that lacks ``state.json`` (a copy cut short),
    which :func:`~latentcot.runs.list_checkpoints` leaves out: a run must not overlook it and start afresh."""
    root = Path(output_dir) / "checkpoints"
    return sorted(p for p in root.glob("epoch_*") if p.is_dir()) if root.is_dir() else []


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Resumable:
    """Load a training checkpoint's optimizer, RNG state and progress, checking its weights on the way.

    A file that is missing, unreadable, cut short or garbled is a :class:`~latentcot.runs.CheckpointError`
    naming it. Anything else (out of memory, a pickle this torch cannot read, a permission) propagates as
    it is: such a checkpoint is intact, and moving it aside would throw its progress away.
    """
    state = _read_json(path / STATE_FILE)
    if not (isinstance(state, dict) and isinstance(state.get("epoch"), int) and isinstance(state.get("step"), int)):
        raise CheckpointError(f"{path / STATE_FILE}: corrupt checkpoint file (no integer 'epoch' and 'step')")
    for weights in sorted(path.rglob("*.safetensors")) or [path / "model.safetensors"]:
        _check_safetensors(weights)
    for name in sorted(set(path.rglob("*.json")) - {path / STATE_FILE}):
        _read_json(name)
    for name in ("optimizer.pt", "rng.pt"):
        _check_archive(path / name)
    # every file checked before the optimizer state, the one big load, is read
    return Resumable(path, state, torch.load(path / "optimizer.pt", map_location=map_location, weights_only=False),
                     torch.load(path / "rng.pt", map_location="cpu", weights_only=False))


def quarantine(path: Path) -> Path:
    """Rename a damaged checkpoint ``corrupt_<name>`` (``corrupt_<name>.1``, ... when taken), out of
    :func:`checkpoint_candidates`' sight. Never deleted: it may hold what a person can still recover."""
    aside, n = path.with_name(f"corrupt_{path.name}"), 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"corrupt_{path.name}.{n}")
    path.rename(aside)
    return aside


# Measured on truncated and randomly overwritten files (torch 2.13, safetensors 0.8): a torch.save file
# cut short always fails zipfile with BadZipFile; garbled, it fails its CRC-32 or, where its directory is
# hit, zipfile's parsing with one of these. torch.load itself raises almost any type on such a file
# (UnpicklingError, RuntimeError, OSError EINVAL, AttributeError, even MemoryError), the same types an
# intact file gives for other reasons, so the archive is checked first and torch.load's errors all propagate.
_ZIP_DAMAGE = (zipfile.BadZipFile, EOFError, NotImplementedError, UnicodeDecodeError)


def _unreadable(err: OSError) -> bool:
    """Missing, not a file, or an I/O error of the disk; not a permission, a resource limit or the like."""
    return isinstance(err, (FileNotFoundError, IsADirectoryError, NotADirectoryError)) or err.errno == errno.EIO


def _damaged(path: Path, what: str, err: BaseException | None = None) -> CheckpointError:
    detail = (str(err).strip() or type(err).__name__).splitlines()[0] if err is not None else ""
    return CheckpointError(f"{path}: {what}" + (f" ({detail})" if detail else ""))


def _check_archive(path: Path) -> None:
    """A torch.save file is a zip archive whose records carry CRC-32s (unless
    ``torch.serialization.set_crc32_options(False)``, which latentcot never calls): it must read back whole."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except OSError as err:
        if not _unreadable(err):
            raise
        raise _damaged(path, "missing or unreadable", err) from err
    except _ZIP_DAMAGE as err:
        raise _damaged(path, "corrupt or partial checkpoint file", err) from err
    if bad is not None:
        raise _damaged(path, f"corrupt checkpoint file ({bad} fails its CRC check)")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as err:
        if not _unreadable(err):
            raise
        raise _damaged(path, "missing or unreadable", err) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _damaged(path, "corrupt or partial checkpoint file", err) from err


def _check_safetensors(path: Path) -> None:
    """Opening checks the header and that its tensors cover the file exactly, without reading the weights."""
    from safetensors import SafetensorError, safe_open

    # safetensors reports a directory or an I/O error as an OSError without errno: look first
    if not path.is_file():
        raise _damaged(path, "missing")
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except SafetensorError as err:
        raise _damaged(path, "corrupt or partial checkpoint file", err) from err
