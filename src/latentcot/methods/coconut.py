"""Coconut (Hao et al. 2024): reasoning steps replaced, stage by stage, by continuous thoughts.

At stage k the first k steps become ``k * c_thought`` thoughts between ``<bot>`` and ``<eot>``; each
thought position receives the previous position's last hidden state instead of a token embedding
(see :mod:`latentcot.models.continuous`). Past ``max_latent_stage`` all remaining text steps go too.
There is no loss on the question, the markers or the thoughts.
"""

from __future__ import annotations

import random
from dataclasses import replace

from ..models.halting import needed_thoughts
from ..tokenization import BOT, EOT, PAUSE, THOUGHT
from .base import IGNORE_INDEX, Example, Method, TokenizedRecord, assemble


class Coconut(Method):
    name = "coconut"
    special_tokens = (BOT, EOT, THOUGHT)
    continuous = True
    thought_token = THOUGHT
    renders_stage_targets = True

    def stage_at(self, epoch: int) -> int:
        return self.cfg.start_stage + epoch // max(self.cfg.epochs_per_stage, 1)

    def thoughts_for(self, stage: int, n_steps: int) -> int:
        """How many thoughts a problem with ``n_steps`` steps gets at ``stage``."""
        replaced = min(stage, self.cfg.max_latent_stage)
        if not self.cfg.pad_latent_to_max:
            replaced = min(replaced, n_steps)
        return replaced * self.cfg.c_thought

    def steps_kept(self, stage: int, n_steps: int) -> int:
        if stage > self.cfg.max_latent_stage:
            return 0
        return max(n_steps - stage, 0)

    def problem_stage(self, epoch: int, rng: random.Random) -> int:
        # uniform_prob mixes stages inside an epoch (the paper's analysis runs), so the model sees
        # every number of thoughts.
        if self.cfg.uniform_prob > 0 and rng.random() < self.cfg.uniform_prob:
            return rng.randint(0, self.cfg.max_latent_stage)
        return self.stage_at(epoch)

    def render(self, record: TokenizedRecord, n_thoughts: int, steps_kept: int) -> Example:
        bot, eot = self.token_ids[BOT], self.token_ids[EOT]
        first_kept = len(record.steps) - steps_kept
        steps = [ids for step in record.steps[first_kept:] for ids in step]
        example = assemble([
            (record.question, False),
            ([bot] + [self.thought_id] * n_thoughts + [eot], False),
            (steps, True),
            (record.answer, True),
        ], self.thought_id if self.continuous else None)
        if not (self.continuous and self.cfg.halting):
            return example  # no halting head to train: no decisions, no targets
        return replace(example, halt_from=len(record.question), halt_needed=needed_thoughts(
            len(record.steps), self.cfg.c_thought, self.cfg.max_latent_stage))

    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        stage = self.problem_stage(epoch, rng)
        n_steps = len(record.steps)
        if self.cfg.stage_target == "frontier" and stage < n_steps and stage <= self.cfg.max_latent_stage:
            return self.render_frontier(record, stage, rng)
        return self.render(record, self.thoughts_for(stage, n_steps), self.steps_kept(stage, n_steps))

    def render_frontier(self, record: TokenizedRecord, stage: int, rng: random.Random) -> Example:
        """Zhu, Hao et al. (2025, "Reasoning by Superposition", as their released code trains): at stage k
        the k thoughts are followed by ONE node drawn at random from those k+1 edges from the root on a
        path to the target, written as the answer is, instead of the remaining steps; once k reaches the
        problem's steps the label is the answer itself (:meth:`render`)."""
        if not record.stage_targets:
            raise ValueError("method.stage_target=frontier: the problem carries no stage targets (the trainer "
                             "adds them for data.encoding=graph)")
        thoughts = self.thoughts_for(stage, len(record.steps))
        label = rng.choice(record.stage_targets[stage])
        return self.render(replace(record, answer=label), thoughts, 0)

    def default_thoughts(self) -> int:
        fixed = self.cfg.inference_thoughts
        return fixed if isinstance(fixed, int) and fixed >= 0 else self.cfg.c_thought * self.cfg.max_latent_stage

    def thought_cap(self) -> int:
        """The most thoughts adaptive thinking (``inference_thoughts=auto``) may take."""
        return self.cfg.max_thoughts if self.cfg.max_thoughts >= 0 else self.cfg.c_thought * self.cfg.max_latent_stage

    def prompt(self, record: TokenizedRecord, n_thoughts: int | None = None) -> Example:
        n = self.default_thoughts() if n_thoughts is None else n_thoughts
        example = self.render(record, n, 0)
        # The prompt stops after <eot>: drop the answer the renderer appended.
        cut = len(record.question) + n + 2
        return Example(example.input_ids[:cut], example.labels[:cut], example.n_thoughts, example.thought_start)

    def open_prompt(self, record: TokenizedRecord) -> Example:
        """The prompt of adaptive thinking: the question and ``<bot>``; the halting head decides the rest."""
        ids = list(record.question) + [self.token_ids[BOT]]
        return Example(ids, [IGNORE_INDEX] * len(ids))

    @property
    def end_of_thoughts_id(self) -> int:
        return self.token_ids[EOT]


class CoconutWithoutCurriculum(Coconut):
    """Ablation: train at the final stage from the first epoch (no curriculum)."""

    name = "coconut_wo_curriculum"

    def stage_at(self, epoch: int) -> int:
        return self.cfg.max_latent_stage + 1


class CoconutWithoutThought(Coconut):
    """Ablation: the same curriculum removes steps, but no thoughts take their place."""

    name = "coconut_wo_thought"
    special_tokens = (BOT, EOT)
    continuous = False
    thought_token = None

    def thoughts_for(self, stage: int, n_steps: int) -> int:
        return 0

    def default_thoughts(self) -> int:
        return 0


class CoconutPauseAsThought(Coconut):
    """Ablation: thought positions hold a learned ``<pause>`` embedding instead of the hidden state."""

    name = "coconut_pause_as_thought"
    special_tokens = (BOT, EOT, PAUSE)
    continuous = False
    thought_token = PAUSE
