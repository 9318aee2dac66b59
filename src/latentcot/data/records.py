"""The one data type every part of latentcot exchanges: a reasoning problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError  # re-exported: DataError was defined here

REQUIRED_FIELDS = ("question", "steps", "answer")


@dataclass
class Record:
    """One problem: a question, its reasoning steps, its answer.

    Fields beyond these three (ProsQA's graph: ``idx_to_symbol``, ``edges``, ``root``, ``target``,
    ``neg_target``) live in ``extra`` and are written back out unchanged.
    """

    question: str
    steps: list[str]
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"question": self.question, "steps": list(self.steps), "answer": self.answer}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, obj: Any, source: str = "<memory>", where: str = "record 0") -> "Record":
        """Validate a decoded JSON object; every problem raises one :class:`DataError`."""
        if not isinstance(obj, dict):
            raise DataError(source, where, f"expected a JSON object, got {type(obj).__name__}")
        for name in REQUIRED_FIELDS:
            if name not in obj:
                raise DataError(source, where, "missing", field=name)
        question, steps, answer = obj["question"], obj["steps"], obj["answer"]
        if not isinstance(question, str):
            raise DataError(source, where, f"expected a string, got {type(question).__name__}", "question")
        if not question.strip():
            raise DataError(source, where, "is empty", "question")
        if not isinstance(steps, list):
            raise DataError(source, where, f"expected a list of strings, got {type(steps).__name__}", "steps")
        for i, step in enumerate(steps):
            if not isinstance(step, str):
                raise DataError(
                    source, where, f"item {i} is {type(step).__name__}, expected a string", "steps"
                )
        if not isinstance(answer, str):
            # Numbers in hand-written JSONL are common; a silent str() would hide a wrong column.
            raise DataError(source, where, f"expected a string, got {type(answer).__name__}", "answer")
        if not answer.strip():
            raise DataError(source, where, "is empty", "answer")
        extra = {k: v for k, v in obj.items() if k not in REQUIRED_FIELDS}
        return cls(question=question, steps=list(steps), answer=answer, extra=extra)
