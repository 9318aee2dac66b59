"""Progress bars for terminals, progress lines for log files.

A tqdm bar redraws itself with carriage returns many times a second; written to a file
(``latentcot demo > log 2>&1``, a batch job) that is hundreds of kilobytes of redraws. When the stream is
not a terminal, :func:`progress` prints a plain line instead, at most every ``interval`` seconds and once
at the end, with the same counts, rate and postfix.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterable, Iterator, TextIO

LINE_INTERVAL_SECONDS = 30.0


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class ProgressLines:
    """tqdm's small interface (iterate, ``update``, ``set_postfix``, ``close``) as occasional plain lines."""

    def __init__(self, iterable: Iterable | None = None, desc: str = "", total: int | None = None,
                 initial: int = 0, unit: str = "it", stream: TextIO | None = None,
                 interval: float = LINE_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.iterable = iterable
        self.desc = desc
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = initial
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.start = self.last = clock()
        self.start_n = initial
        self.postfix = ""
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._write(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n > self.start_n:
                self._write(self.clock())

    def _write(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        rate = (self.n - self.start_n) / elapsed
        line = f"{self.desc}: {count} {self.unit} [{elapsed:.0f}s, {rate:.2f} {self.unit}/s]"
        print(line + (f" {self.postfix}" if self.postfix else ""), file=self.stream, flush=True)


class _Disabled(ProgressLines):
    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


def progress_bar(iterable: Iterable | None = None, desc: str = "", total: int | None = None, initial: int = 0,
             unit: str = "it", enabled: bool = True, stream: TextIO | None = None, **tqdm_options: Any):
    """A tqdm bar on a terminal, :class:`ProgressLines` elsewhere, and a silent stand-in when disabled."""
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        return _Disabled(iterable, desc, total, initial, unit, stream)
    if is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, initial=initial, unit=unit, file=stream, leave=False,
                    dynamic_ncols=True, **tqdm_options)
    return ProgressLines(iterable, desc, total, initial, unit, stream)


def quiet_library_bars() -> None:
    """Off-terminal, the bars HuggingFace draws while loading and saving weights go too."""
    if not is_terminal():
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
