"""Written chain of thought, and its ablation without any reasoning steps."""

from __future__ import annotations

import random

from .base import Example, Method, TokenizedRecord, assemble


class CoT(Method):
    """Question, every reasoning step, answer; loss on steps and answer."""

    name = "cot"

    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        steps = [ids for step in record.steps for ids in step]
        return assemble([(record.question, False), (steps, True), (record.answer, True)])

    def prompt(self, record: TokenizedRecord, n_thoughts: int | None = None) -> Example:
        return assemble([(record.question, False)])


class NoCoT(Method):
    """Question then answer directly; loss on the answer."""

    name = "no_cot"

    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        return assemble([(record.question, False), (record.answer, True)])

    def prompt(self, record: TokenizedRecord, n_thoughts: int | None = None) -> Example:
        return assemble([(record.question, False)])
