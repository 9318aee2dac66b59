"""Pause tokens (Goyal et al. 2023): learned ``<pause>`` tokens between question and answer, no steps.

The pauses give the model extra positions to compute in before it answers; they are part of the
prompt (not generated, no loss). As in the Coconut paper's baseline, the default count matches
Coconut's thoughts (``c_thought * max_latent_stage``); ``--n-thoughts`` at inference overrides it.
"""

from __future__ import annotations

import random

from ..tokenization import PAUSE
from .base import Example, Method, TokenizedRecord, assemble


class Pause(Method):
    name = "pause"
    special_tokens = (PAUSE,)

    def default_thoughts(self) -> int:
        return self.cfg.n_pause if self.cfg.n_pause >= 0 else self.cfg.c_thought * self.cfg.max_latent_stage

    def render(self, record: TokenizedRecord, n_pause: int, with_answer: bool) -> Example:
        pieces = [(record.question, False), ([self.token_ids[PAUSE]] * n_pause, False)]
        if with_answer:
            pieces.append((record.answer, True))
        return assemble(pieces)

    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        return self.render(record, self.default_thoughts(), with_answer=True)

    def prompt(self, record: TokenizedRecord, n_thoughts: int | None = None) -> Example:
        return self.render(record, self.default_thoughts() if n_thoughts is None else n_thoughts, with_answer=False)
