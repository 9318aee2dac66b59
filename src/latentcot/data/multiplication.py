"""k-by-k multiplication problems in the format of iCoT (Deng et al.).

iCoT writes every number with its digits reversed (least significant first), separated by
spaces, so a left-to-right decoder produces carries in the order they are needed. One line is

    ``a * b||p0 + p1 ( s1 ) + p2 ( s2 ) + ... + p_{m-1} #### product``

where ``p_i`` is ``a * b_i`` shifted left by ``i`` places (``i`` leading zeros in reversed form)
and ``s_i`` is the sum of ``p_0 .. p_i``. There is no running sum after ``p_0`` (it would repeat
``p_0``) nor after the last partial product (it is the answer). Widths are fixed by the operand
lengths, not by the values: ``p_i`` and ``s_i`` have ``k + 1 + i`` digits and the answer ``k + m``,
zero padded, so every problem of one size has the same token layout.

In a :class:`Record`, ``steps`` are the `` + ``-separated chunks: one partial product each, with
its running sum in parentheses when the line has one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .io import format_icot_line as to_icot_line, parse_icot_line  # noqa: F401  (re-exported)
from ..config import option
from ..errors import UsageError
from .records import Record

__all__ = [
    "MultiplicationOptions",
    "generate",
    "make_record",
    "operands",
    "to_icot_line",
    "parse_icot_line",
    "digits_to_int",
    "int_to_digits",
]

# Beyond 20x20 the step text grows past what any model in this project sees (the largest iCoT
# setting is 20x20); the bound mainly catches a typo such as k=40 for k=4.
MAX_DIGITS = 20


@dataclass
class MultiplicationOptions:
    # The CLI shows metadata["help"] as each flag's help.
    k: int = option(4, "digits of the first operand (iCoT uses 4..20)")
    k2: int = option(0, "digits of the second operand; 0 means the same as k")
    distinct: bool = option(True, "never repeat an operand pair in one set")

    def validate(self) -> None:
        for name in ("k", "k2"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"MultiplicationOptions.{name} must be an int, got {value!r}")
        if not 1 <= self.k <= MAX_DIGITS:
            raise UsageError(f"MultiplicationOptions.k must be in 1..{MAX_DIGITS}, got {self.k}")
        if self.k2 != 0 and not 1 <= self.k2 <= MAX_DIGITS:
            raise UsageError(
                f"MultiplicationOptions.k2 must be 0 (same as k) or in 1..{MAX_DIGITS}, got {self.k2}"
            )

    @property
    def second_digits(self) -> int:
        return self.k2 or self.k


def int_to_digits(value: int, width: int) -> str:
    """``value`` as ``width`` space-separated digits, least significant first."""
    if value < 0:
        raise ValueError(f"negative numbers have no iCoT form: {value}")
    text = str(value)
    if len(text) > width:
        raise ValueError(f"{value} has more than {width} digits")
    return " ".join(reversed(text.zfill(width)))


def digits_to_int(text: str) -> int:
    """Inverse of :func:`int_to_digits` (padding zeros are allowed)."""
    tokens = text.split()
    if not tokens or not all(len(t) == 1 and t.isdigit() for t in tokens):
        raise ValueError(f"expected space-separated single digits, got {text!r}")
    return int("".join(reversed(tokens)))


def make_record(a: int, b: int, k: int, k2: int | None = None) -> Record:
    """The problem ``a * b`` with ``a`` written on ``k`` digits and ``b`` on ``k2`` (default ``k``)."""
    m = k if k2 is None else k2
    if k < 1 or m < 1:
        raise ValueError(f"operand widths must be positive, got k={k}, k2={m}")
    if not 0 <= a < 10**k:
        raise ValueError(f"first operand {a} does not fit in {k} digits")
    if not 0 <= b < 10**m:
        raise ValueError(f"second operand {b} does not fit in {m} digits")
    b_digits = [int(c) for c in reversed(str(b).zfill(m))]
    steps: list[str] = []
    running = 0
    for i, digit in enumerate(b_digits):
        width = k + 1 + i
        partial = a * digit * 10**i
        running += partial
        step = int_to_digits(partial, width)
        if 0 < i < m - 1:
            step += f" ( {int_to_digits(running, width)} )"
        steps.append(step)
    question = f"{int_to_digits(a, k)} * {int_to_digits(b, m)}"
    return Record(question=question, steps=steps, answer=int_to_digits(running, k + m))


def operands(question: str) -> tuple[int, int, int, int]:
    """``(a, b, k, k2)`` from a question such as ``"5 6 3 2 * 7 4 3 4"``."""
    parts = question.split("*")
    if len(parts) != 2:
        raise ValueError(f"expected 'digits * digits', got {question!r}")
    left, right = parts
    return digits_to_int(left), digits_to_int(right), len(left.split()), len(right.split())


def generate(n: int, seed: int = 0, options: MultiplicationOptions | None = None) -> list[Record]:
    """``n`` random problems; operands have no leading zero, as in iCoT's files."""
    opts = options if options is not None else MultiplicationOptions()
    opts.validate()
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    k, m = opts.k, opts.second_digits
    lo_a, hi_a = 10 ** (k - 1), 10**k - 1
    lo_b, hi_b = 10 ** (m - 1), 10**m - 1
    space = (hi_a - lo_a + 1) * (hi_b - lo_b + 1)
    if opts.distinct and n > space:
        raise UsageError(f"only {space} distinct {k}x{m}-digit problems exist, asked for {n}")
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    records = []
    while len(records) < n:
        a, b = rng.randint(lo_a, hi_a), rng.randint(lo_b, hi_b)
        if opts.distinct:
            if (a, b) in seen:
                continue
            seen.add((a, b))
        records.append(make_record(a, b, k, m))
    return records
