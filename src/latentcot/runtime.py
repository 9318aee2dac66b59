"""Process-wide helpers every command needs: which device to run on, seeding, and RNG state.

They live here, below every other module, so that training, inference, the VQ-VAE and the CLI can use
them without importing one another.
"""

from __future__ import annotations

import random
import signal
import sys
import threading
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


class StopRequests:
    """While active, SIGINT (Ctrl-C) and SIGTERM only ask a training loop to stop at its next safe point
    (``requested`` turns true); a second signal stops at once. The caller's handlers come back on exit.

    Handlers can only be set from the main thread; elsewhere this does nothing and signals act as usual.
    """

    def __init__(self, announce: bool = True, what: str = "after the current step with a checkpoint"):
        self.signal: signal.Signals | None = None
        self.announce = announce
        self.what = what
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal or signal.SIGTERM)

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum)
        if self.announce:
            print(f"\n{self.signal.name}: stopping {self.what} (send it again to stop at once)", file=sys.stderr,
                  flush=True)

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
