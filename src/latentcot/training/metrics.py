"""Metrics as JSON lines (one object per event, easy to plot), optionally mirrored to TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError, PackageError


class MetricsLog:
    def __init__(self, path: str | Path, enabled: bool = True, tensorboard_dir: str | Path | None = None):
        self.path = Path(path)
        self.enabled = enabled
        self.writer = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if enabled and tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise PackageError("train.tensorboard=true needs the tensorboard extra: "
                                   "pip install -e '.[tensorboard]'") from err
            self.writer = SummaryWriter(str(tensorboard_dir))

    def truncate_after(self, epoch: int) -> None:
        """Drop lines from epochs that a resumed run will redo (the interrupted one and later)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line, row in _rows(self.path) if row.get("epoch", -1) < epoch]
        from ..data.io import atomic_write

        atomic_write(self.path, "".join(line + "\n" for line in kept))

    def truncate_after_step(self, step: int) -> None:
        """Drop lines a resumed run will write again: those logged after optimizer step ``step``."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line, row in _rows(self.path) if row.get("step", 0) <= step]
        from ..data.io import atomic_write

        atomic_write(self.path, "".join(line + "\n" for line in kept))

    def log(self, kind: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"type": kind, "step": step, **values}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "stage"):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, parsed) pairs; a torn last line (the process died mid-write) is dropped, any other bad line
    is an error naming the file and line."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append((line, json.loads(line)))
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise DataError(str(path), f"line {number}", f"not JSON ({err.msg})") from None
    return rows


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [row for _, row in _rows(Path(path))]
