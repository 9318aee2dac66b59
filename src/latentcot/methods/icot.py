"""iCoT, stepwise internalization (Deng et al. 2024): the written reasoning is removed token by token.

Training starts as cot (``cot_epochs`` epochs, or 0 when ``train.init_from`` is a cot run); from then on
each epoch removes ``remove_per_epoch`` more tokens from the start of the steps. Removal smoothing gives
each problem an extra offset o with P(o) proportional to exp(-lambda * o), so the model sees a little of
the next removal count before it is scheduled. Once the scheduled count reaches
``remove_all_when_remove_beyond`` every step goes. The optimizer starts fresh whenever the scheduled count
changes. At the end the model answers directly: inference prompts with the question alone.

The schedule and the offset draw are pure functions so they can be tested on their own.
"""

from __future__ import annotations

import math
import random

from .base import Example, Method, TokenizedRecord, assemble


def icot_stage(epoch: int, cot_epochs: int, remove_per_epoch: int, remove_all_beyond: int) -> int:
    """Removal stage of a 0-based epoch: 0 during the cot epochs, then 1, 2, ...; it stops growing at
    the first stage whose removal reaches ``remove_all_beyond`` (when that is >= 0), so the optimizer is
    not reset again once everything is gone."""
    if epoch < cot_epochs:
        return 0
    stage = epoch - cot_epochs + 1
    if remove_all_beyond >= 0 and remove_per_epoch > 0:
        stage = min(stage, max(math.ceil(remove_all_beyond / remove_per_epoch), 1))
    return stage


def tokens_removed(stage: int, remove_per_epoch: int, remove_all_beyond: int) -> int | None:
    """Tokens scheduled for removal at ``stage``; ``None`` means every reasoning token."""
    count = stage * remove_per_epoch
    if stage > 0 and remove_all_beyond >= 0 and count >= remove_all_beyond:
        return None
    return count


def removal_offset(rng: random.Random, smoothing_lambda: float) -> int:
    """Draw o >= 0 with P(o) proportional to exp(-lambda * o) (a geometric law); 0 when lambda <= 0."""
    if smoothing_lambda <= 0:
        return 0
    keep_going = math.exp(-smoothing_lambda)
    offset = 0
    while rng.random() < keep_going:
        offset += 1
    return offset


class ICoT(Method):
    name = "icot"

    def stage_at(self, epoch: int) -> int:
        c = self.cfg
        return icot_stage(epoch, c.cot_epochs, c.remove_per_epoch, c.remove_all_when_remove_beyond)

    def removal_for(self, epoch: int, rng: random.Random) -> int | None:
        """Tokens this problem loses at ``epoch`` (``None``: all of them), smoothing offset included."""
        c = self.cfg
        removed = tokens_removed(self.stage_at(epoch), c.remove_per_epoch, c.remove_all_when_remove_beyond)
        if removed is None or removed == 0:
            return removed
        return removed + removal_offset(rng, c.removal_smoothing_lambda)

    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        steps = [ids for step in record.steps for ids in step]
        removed = self.removal_for(epoch, rng)
        kept = [] if removed is None else steps[removed:]
        return assemble([(record.question, False), (kept, True), (record.answer, True)])

    def prompt(self, record: TokenizedRecord, n_thoughts: int | None = None) -> Example:
        return assemble([(record.question, False)])
