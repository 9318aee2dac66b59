"""Notes through :mod:`logging`: one logger per module (``logging.getLogger(__name__)``), set up by the CLI.

The library only logs; it never configures handlers, so a program that imports latentcot keeps its own
logging set-up. :func:`configure` (called by ``latentcot``'s ``main``) writes the ``latentcot`` loggers' records
on stderr, each message as it is (no level or logger name), so a terminal shows what it showed when these were
``print`` calls, and stdout keeps only a command's result (a table, JSON, generated text) for a pipe.
``LATENTCOT_LOG`` sets the level (``warning`` silences the informational notes and keeps the warnings;
``--quiet`` does the same); under ``torchrun`` only rank 0 writes notes and warnings, every rank its errors.
Progress bars are not logs (:mod:`latentcot.progress`).
"""

from __future__ import annotations

import logging
import os
import sys

ROOT = "latentcot"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
ENV = "LATENTCOT_LOG"


class _MainRankOnly(logging.Filter):
    """Under torchrun every process runs the same code; only rank 0's notes and warnings are written."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or os.environ.get("RANK", "0") == "0"


class _CurrentStderr(logging.StreamHandler):
    """A handler on ``sys.stderr`` as it is when a record is written, not when the handler was made, so a stream
    redirected later (pytest's capture, ``contextlib.redirect_stderr``) receives it."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; the property always reads sys.stderr
        pass


def level_from_env(quiet: bool = False) -> int:
    """The level ``LATENTCOT_LOG`` names (default info); ``quiet`` raises it to warning at least."""
    name = os.environ.get(ENV, "info").strip().lower()
    if name not in LEVELS:
        from .errors import UsageError

        raise UsageError(f"{ENV}={name!r}: expected one of {', '.join(LEVELS)}")
    level = LEVELS[name]
    return max(level, logging.WARNING) if quiet else level


def configure(quiet: bool = False) -> None:
    """Write the ``latentcot`` loggers' records on stderr at the level ``LATENTCOT_LOG`` (or ``quiet``) sets."""
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _CurrentStderr)]:
        logger.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_MainRankOnly())
    logger.addHandler(handler)
    logger.setLevel(level_from_env(quiet))
    logger.propagate = False
