"""Exact-match answers, the Coconut code's rule: the text after the last ``#``, commas removed, stripped.

A model writes ``### 1,250`` or ``### Tom is a lempus.``, so the same rule gives a number or the whole ProsQA
answer sentence; a text without ``#`` is compared whole.
"""

from __future__ import annotations

from typing import Sequence

from ..data.records import Record


def _normalize(text: str) -> str:
    # Commas go so that "1,000" and "1000" match (GSM8k writes both).
    return text.replace(",", "").strip()


def extract_answer(text: str) -> str:
    """The predicted answer in a generated text: what follows the last ``#``, commas removed, stripped."""
    return _normalize(text.rsplit("#", 1)[-1])


def is_correct(generated_text: str, record: Record) -> bool:
    return extract_answer(generated_text) == _normalize(record.answer)


def accuracy(texts: Sequence[str], records: Sequence[Record]) -> float:
    """The share of ``texts`` whose answer is their record's."""
    return sum(is_correct(t, r) for t, r in zip(texts, records)) / len(records)


def flip_rate(texts: Sequence[str], reference: Sequence[str]) -> float:
    """The share of ``texts`` whose answer differs from the reference text's."""
    return sum(extract_answer(t) != extract_answer(b) for t, b in zip(texts, reference)) / len(reference)
