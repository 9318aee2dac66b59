"""Process-wide helpers every command needs: which device to run on, seeding, and RNG state.

They live here, below every other module, so that training, inference, the VQ-VAE and the CLI can use
them without importing one another.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is the process's GPU (``local_rank`` under torchrun) when there is one, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    return torch.device(name)


# Linux's names for the two CPU features that make a bf16 matmul native: AVX512-BF16 (Zen 4, Cooper Lake and
# later) and AMX's bf16 tiles (Sapphire Rapids and later).
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path | None = None) -> frozenset[str] | None:
    """The feature flags of the first CPU in ``cpuinfo`` (``/proc/cpuinfo``), or None where that file or
    its ``flags`` line is missing (not Linux, or not x86)."""
    try:
        with open(cpuinfo or CPUINFO, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def cpu_has_native_bf16(cpuinfo: Path | None = None) -> bool:
    """Whether the CPU has AVX512-BF16 or AMX-BF16, read from the kernel's flags so that a test can hand it
    any CPU's; where there are none to read, torch's own probes answer."""
    flags = cpu_flags(cpuinfo)
    if flags is not None:
        return bool(flags & NATIVE_BF16_CPU_FLAGS)
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch without the probes: assume the common case, none
        return False


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes bf16 matmuls in hardware.

    A GPU with bf16 support does. A CPU does when it has AVX512-BF16 or AMX (:func:`cpu_has_native_bf16`):
    there a GPT-2 cot training step measured 1.9-2.7x as fast in bf16 as in fp32, Coconut's 1.2-1.5x
    (bench/precision.json), though the demo's Llama 2x128 trained 1.2-1.5x slower. Without them oneDNN
    emulates bf16, and on an AVX2 CPU a bf16 matmul measured 120-180x slower than fp32, so bf16 there is
    never what a user wants."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def uses_bf16(precision: str, device: torch.device, key: str = "train.precision") -> bool:
    """Resolve a precision setting: ``bf16`` and ``fp32`` as said; ``auto`` bf16 autocast on a GPU that has
    it and fp32 on every CPU. Not bf16 on a native-bf16 CPU either: there the demo's accuracy moved far past
    its seed-to-seed spread in bf16 (no_cot learned the task in bf16 and stayed at chance in fp32, both
    seeds; README, Precision), and the demo trained slower in bf16. ``bf16`` on a CPU that would emulate
    it is done as asked, with a warning: it runs slower, not faster."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"{key}: expected auto, fp32 or bf16, got {precision!r}")
    if precision == "bf16" and device.type == "cpu" and not native_bf16(device):
        log.warning(f"warning: {key}=bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX): oneDNN emulates it, "
              "many times slower than fp32 (bench/precision.json); auto would choose fp32")
    if precision == "auto":
        return device.type == "cuda" and native_bf16(device)
    return precision == "bf16"


def autocast_for(precision: str, device: torch.device, key: str = "train.precision"):
    """A context-manager factory: bf16 autocast when :func:`uses_bf16` says so, else a no-op. Weights,
    optimizer state and the loss stay fp32 (or the model's own dtype) either way."""
    import contextlib

    if not uses_bf16(precision, device, key):
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


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
            # print, not logging: a signal handler may run while the main thread holds logging's lock
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
