"""The errors latentcot reports to the person who ran it, and how the CLI tells them from bugs.

A :class:`UserError` means an input of the user's is wrong (a data file, a config value, a checkpoint,
a command-line flag): the CLI prints its message as one ``error: ...`` line. Any other exception is a bug
(ours or a library's) and keeps its traceback, except running out of memory (:func:`is_out_of_memory`),
which the CLI answers with one line saying which batch size to lower (:data:`OUT_OF_MEMORY_ADVICE`).

This module imports nothing from latentcot, so that every module can raise these errors.
"""

from __future__ import annotations

import sys


class UserError(ValueError):
    """An input of the user's is wrong; the CLI prints it as one line.

    A ValueError, as every one of these errors was before it had its own class, so code that catches
    ValueError keeps catching them."""


class DataError(UserError):
    """Malformed input data. The message names the file, the record (or line) and the field."""

    def __init__(self, source: str, where: str, message: str, field: str | None = None):
        self.source = source
        self.where = where
        self.field = field
        location = f"{source}: {where}"
        if field is not None:
            location += f": field '{field}'"
        super().__init__(f"{location}: {message}")


class ConfigError(UserError):
    """A bad config file, key or value; the message names the key (``key``: its dotted name, when one)."""

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


class CheckpointError(UserError):
    """A checkpoint that is missing files or does not load; the message names the file."""


class UsageError(UserError):
    """A command-line flag or argument that is refused (a value out of range, flags that exclude each other,
    an output path that cannot be written); the message names the flag."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or one that it must hold) does not exist; the message names it.

    Also a FileNotFoundError, which is what callers caught before this class existed."""


class PackageError(UserError, RuntimeError):
    """A setting needs an optional package that is not installed (or one that is installed gets in its way);
    the message says what to install or uninstall.

    Also a RuntimeError, which is what callers caught before this class existed."""


OUT_OF_MEMORY_ADVICE = ("lower train.micro_batch_size (training), or train.eval_batch_size, a comparison "
                        "plan's eval_batch_size or --batch-size (evaluation, generation)")

# How torch words an allocation that failed without raising its OutOfMemoryError: the CPU allocator
# ("DefaultCPUAllocator: can't allocate memory: you tried to allocate ...") and CUDA or MPS errors
# that carry "out of memory" in their text.
_OUT_OF_MEMORY_WORDS = ("can't allocate memory", "out of memory")
_CAUSE_CHARS = 160


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` reports that the host or the accelerator ran out of memory."""
    if isinstance(err, MemoryError):
        return True
    # Only an imported torch can have raised its own error, so torch is never imported just to ask.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch_errors = tuple(cls for cls in (getattr(torch, "OutOfMemoryError", None),
                                             getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None))
                             if isinstance(cls, type))
        if torch_errors and isinstance(err, torch_errors):
            return True
    if isinstance(err, RuntimeError):
        text = str(err).lower()
        return any(words in text for words in _OUT_OF_MEMORY_WORDS)
    return False


def is_load_failure(err: BaseException) -> bool:
    """Whether ``err``, raised while transformers or tokenizers read a saved model or tokenizer, reports the
    files (missing, damaged, written by another version) rather than a bug or a lack of memory.

    Those libraries raise OSError for a missing file, json's ValueError for a garbled one, KeyError for a
    missing field, RuntimeError for weights of the wrong shape, and (tokenizers) a bare Exception for a
    tokenizer.json it cannot parse."""
    if is_out_of_memory(err):
        return False
    return isinstance(err, (OSError, ValueError, KeyError, RuntimeError)) or type(err) is Exception


def out_of_memory_message(err: BaseException) -> str:
    """One line for an out-of-memory error: what ran out (torch's first line) and which batch size to lower."""
    first_line = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    if len(first_line) > _CAUSE_CHARS:  # CUDA's runs on with allocator statistics and tuning hints
        first_line = first_line[:_CAUSE_CHARS].rstrip() + "..."
    return f"out of memory ({first_line}): {OUT_OF_MEMORY_ADVICE}"
