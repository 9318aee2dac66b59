"""The synthetic data sets by name: each entry is a ``generate(n, seed, options)`` and its options type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import UsageError
from . import multiplication, prontoqa, prosqa
from .records import Record


@dataclass(frozen=True)
class Generator:
    name: str
    generate: Callable[..., list[Record]]
    options: type
    description: str


GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator("prosqa", prosqa.generate, prosqa.ProsQAOptions,
                  "ProsQA: graph search over fictional concepts (Coconut paper)"),
        Generator("prontoqa", prontoqa.generate, prontoqa.ProntoQAOptions,
                  "ProntoQA: 5-hop deduction over a fictional ontology"),
        Generator("mult", multiplication.generate, multiplication.MultiplicationOptions,
                  "k-by-k multiplication in iCoT's format (digits reversed)"),
    )
}


def generate(name: str, n: int, seed: int = 0, **options: Any) -> list[Record]:
    if name not in GENERATORS:
        raise UsageError(f"unknown data set generator {name!r}; choose one of {', '.join(GENERATORS)}")
    entry = GENERATORS[name]
    return entry.generate(n, seed, entry.options(**options))
