"""Summary statistics of a problem file: sizes, step counts, token lengths, ProsQA graph shape."""

from __future__ import annotations

from collections import Counter
from statistics import mean
from typing import Any, Sequence

from .graph import GRAPH_FIELDS
from .records import Record


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "mean": round(mean(values), 2), "max": max(values)}


def dataset_stats(records: Sequence[Record], tokenizer: Any = None) -> dict[str, Any]:
    steps = [len(r.steps) for r in records]
    stats: dict[str, Any] = {
        "problems": len(records),
        "steps": _summary(steps),
        "steps_histogram": dict(sorted(Counter(steps).items())),
        "question_chars": _summary([len(r.question) for r in records]),
        "answer_chars": _summary([len(r.answer) for r in records]),
    }
    if tokenizer is not None:
        from ..tokenization import record_text

        lengths = [len(ids) for ids in tokenizer([record_text(r) for r in records])["input_ids"]]
        stats["tokens_per_problem"] = _summary(lengths)
        stats["vocab_size"] = len(tokenizer)
        if tokenizer.unk_token_id is not None:
            flat = [t for ids in tokenizer([record_text(r) for r in records])["input_ids"] for t in ids]
            stats["unk_share"] = round(flat.count(tokenizer.unk_token_id) / max(len(flat), 1), 4)
    if records and all(all(f in r.extra for f in GRAPH_FIELDS) for r in records):
        stats["graph"] = {
            "nodes": _summary([len(r.extra["idx_to_symbol"]) for r in records]),
            "edges": _summary([len(r.extra["edges"]) for r in records]),
        }
    return stats
