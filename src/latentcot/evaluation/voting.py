"""Scoring N sampled answers per problem: majority vote, pass@k and agreement, at k = 1, 2, 4, ..., N."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from ..data.records import Record
from .answers import extract_answer, is_correct


def sample_counts(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def majority(texts: Sequence[str]) -> str:
    """The text whose extracted answer most samples give; a tie goes to the answer given first."""
    answers = [extract_answer(t) for t in texts]
    counts = Counter(answers)
    best = max(counts.values())
    return next(t for t, a in zip(texts, answers) if counts[a] == best)


def agreement(texts: Sequence[str]) -> float:
    """The share of samples that give the majority answer."""
    return Counter(extract_answer(t) for t in texts).most_common(1)[0][1] / len(texts)


def vote_curve(texts: Sequence[Sequence[str]], passes: Sequence[Sequence[int]], records: Sequence[Record]
               ) -> list[dict]:
    """Per k in :func:`sample_counts`: over the first k samples of every problem, the majority vote's accuracy,
    pass@k (any sample right), the agreement, and the mean forward passes per problem they cost."""
    n = min(len(t) for t in texts)
    rows = []
    for k in sample_counts(n):
        rows.append({
            "samples": k,
            "majority_accuracy": sum(is_correct(majority(t[:k]), r) for t, r in zip(texts, records)) / len(records),
            "pass_at_k": sum(any(is_correct(x, r) for x in t[:k]) for t, r in zip(texts, records)) / len(records),
            "agreement": sum(agreement(t[:k]) for t in texts) / len(records),
            "forward_passes": sum(sum(p[:k]) for p in passes) / len(records),
        })
    return rows
