"""Coconut (Hao et al. 2024): reasoning steps replaced, stage by stage, by continuous thoughts.

At stage k the first k steps become ``k * c_thought`` thoughts between ``<bot>`` and ``<eot>``; each
thought position receives the previous position's last hidden state instead of a token embedding
(see :mod:`latentcot.models.continuous`). Past ``max_latent_stage`` all remaining text steps go too.
There is no loss on the question, the markers or the thoughts.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..config import Config, ConfigError
from ..data.encodings import graph_stage_targets
from ..data.records import Record
from ..data.targets import check_target_encoding, thought_target_texts
from ..models.continuous import loss_of_pass
from ..models.halting import decision_count, needed_thoughts
from ..models.projection import (attach_thought_norm, detach_latent_projection, detach_thought_norm,
                                 latent_projection, set_thought_feedback, thought_feedback, thought_norm)
from ..tokenization import BOT, EOT, PAUSE, THOUGHT
from . import step_decoder as simcot
from .base import ContinuousThoughts, Example, Method, TokenizedRecord, assemble, prepare_halting_head
from ..errors import ConfigError

log = logging.getLogger(__name__)


class StepCurriculum(Method):
    """Coconut's curriculum, shared with the ablations that keep it: at stage k the first k steps become
    ``k * c_thought`` positions of ``thought_token`` between ``<bot>`` and ``<eot>``. They are continuous
    thoughts only in :class:`Coconut`; ``<pause>`` tokens or nothing in its ablations."""

    special_tokens = (BOT, EOT, THOUGHT)
    thought_token = THOUGHT

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        if cfg.method.stage_target == "frontier" and cfg.data.encoding not in ("graph", "graph_edges"):
            raise ConfigError(f"config key 'method.stage_target': needs data.encoding=graph or graph_edges (problems "
                              f"that carry a graph), got data.encoding={cfg.data.encoding}", key="method.stage_target")

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

    def eval_thoughts(self, epoch: int) -> int | None:
        # As the reference validates: a stage-k model gets its k thoughts and writes the rest of the
        # steps, so the curve before the last stage measures the model being trained, not one given
        # more thoughts than it has learned to use. Mixed stages and frontier targets keep the default.
        stage = self.stage_at(epoch)
        if self.cfg.uniform_prob > 0 or self.cfg.stage_target == "frontier" or stage > self.cfg.max_latent_stage:
            return None
        return self.thoughts_for(stage, self.cfg.max_latent_stage)

    def frontier_stage(self, epoch: int) -> int | None:
        stage = self.stage_at(epoch)
        return stage if self.cfg.stage_target == "frontier" and stage <= self.cfg.max_latent_stage else None

    def with_training_targets(self, records: list[Record]) -> list[Record]:
        if self.cfg.stage_target != "frontier":
            return records
        return [Record(r.question, r.steps, r.answer, dict(r.extra, stage_targets=graph_stage_targets(r)))
                for r in records]

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
        return assemble([
            (record.question, False),
            ([bot] + [self.thought_id] * n_thoughts + [eot], False),
            (steps, True),
            (record.answer, True),
        ], self.thought_id if self.continuous else None)

    def staged_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> tuple[Example, int]:
        """The problem as its stage at ``epoch`` writes it, and how many of its steps that stage replaced."""
        stage = self.problem_stage(epoch, rng)
        n_steps = len(record.steps)
        if self.cfg.stage_target == "frontier" and stage < n_steps and stage <= self.cfg.max_latent_stage:
            example = self.render_frontier(record, stage, rng)
        else:
            example = self.render(record, self.thoughts_for(stage, n_steps), self.steps_kept(stage, n_steps))
        return example, n_steps if stage > self.cfg.max_latent_stage else min(stage, n_steps)

    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        return self.staged_example(record, epoch, rng)[0]

    def render_frontier(self, record: TokenizedRecord, stage: int, rng: random.Random) -> Example:
        """Zhu, Hao et al. (2025, "Reasoning by Superposition", as their released code trains): at stage k
        the k thoughts are followed by ONE node drawn at random from those k+1 edges from the root on a
        path to the target, written as the answer is, instead of the remaining steps; once k reaches the
        problem's steps the label is the answer itself (:meth:`render`)."""
        if not record.stage_targets:
            raise ValueError("method.stage_target=frontier: the problem carries no stage targets "
                             "(with_training_targets adds them for data.encoding=graph)")
        thoughts = self.thoughts_for(stage, len(record.steps))
        label = rng.choice(record.stage_targets[stage])
        return self.render(replace(record, answer=label), thoughts, 0)

    def default_thoughts(self) -> int:
        fixed = self.cfg.inference_thoughts
        return fixed if isinstance(fixed, int) and fixed >= 0 else self.cfg.c_thought * self.cfg.max_latent_stage

    def prompt(self, record: TokenizedRecord, n_thoughts: int | None = None) -> Example:
        n = self.default_thoughts() if n_thoughts is None else n_thoughts
        example = self.render(record, n, 0)
        # The prompt stops after <eot>: drop the answer the renderer appended.
        cut = len(record.question) + n + 2
        return Example(example.input_ids[:cut], example.labels[:cut], example.n_thoughts, example.thought_start)


class Coconut(StepCurriculum, ContinuousThoughts):
    name = "coconut"
    special_tokens = (BOT, EOT, THOUGHT)

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        super().check_config(cfg)
        check_target_encoding(cfg.method.thought_targets, cfg.data.encoding)
        if cfg.method.inference_thoughts == "auto" and not cfg.method.halting:
            raise ConfigError("config key 'method.inference_thoughts': auto needs a halting head; set "
                              "method.halting=true to train one", key="method.inference_thoughts")

    def needed_thoughts(self, n_steps: int) -> int:
        return needed_thoughts(n_steps, self.cfg.c_thought, self.cfg.max_latent_stage)

    def render(self, record: TokenizedRecord, n_thoughts: int, steps_kept: int) -> Example:
        example = super().render(record, n_thoughts, steps_kept)
        if not self.cfg.halting:
            return example  # no halting head to train: no decisions, no targets
        return replace(example, halt_from=len(record.question), halt_needed=self.needed_thoughts(len(record.steps)),
            loss_counts={**example.loss_counts, "halt": decision_count(example.n_thoughts)})

    # -- thought targets (method.thought_targets) --------------------------------------------------
    def with_thought_targets(self, example: Example, record: TokenizedRecord) -> Example:
        """Thought j's target is hop j // thoughts_per_step + 1 of the record's ``thought_targets``."""
        if self.cfg.thought_targets == "none" or example.n_thoughts == 0:
            return example
        if not record.thought_targets:
            raise ValueError(f"method.thought_targets={self.cfg.thought_targets}: the problem carries no thought "
                             "targets (the trainer adds them from the encoded record)")
        c, hops = self.thoughts_per_step(), record.thought_targets
        targets = [list(hops[j // c]) if j // c < len(hops) else [] for j in range(example.n_thoughts)]
        return replace(example, thought_targets=targets,
                       loss_counts={**example.loss_counts, "thought_target": sum(1 for t in targets if t)})

    def teacher_forced_at(self, epoch: int) -> bool:
        """Whether training at ``epoch`` feeds each thought its target set (thought_feedback=target_mixture)."""
        until = self.cfg.teacher_forcing_epochs
        return self.cfg.thought_feedback == "target_mixture" and (until < 0 or epoch < until)

    def thought_target_kind(self) -> str:
        return self.cfg.thought_targets

    def with_training_targets(self, records: list[Record]) -> list[Record]:
        records = super().with_training_targets(records)
        if self.cfg.thought_targets == "none":
            return records
        hops = self.thought_target_hops()
        return [Record(r.question, r.steps, r.answer, dict(
            r.extra, thought_targets=thought_target_texts(r, self.cfg.thought_targets, hops))) for r in records]

    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        example = self.with_thought_targets(self.scheduled_example(record, epoch, rng), record)
        if example.thought_targets and self.teacher_forced_at(epoch):
            example = replace(example, teacher_forced=True)
        return example

    def scheduled_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        example, replaced = self.staged_example(record, epoch, rng)
        return self.with_step_targets(example, record, replaced)

    # -- SIM-CoT's step supervision (method.step_decoder) ------------------------------------------
    def with_step_targets(self, example: Example, record: TokenizedRecord, replaced: int) -> Example:
        """With ``method.step_decoder``: each thought's decoder target, from the ``replaced`` steps its thoughts
        stand for (the c_thought thoughts of step k all decode step k; see :func:`simcot.step_slots`)."""
        if not self.cfg.step_decoder or example.n_thoughts == 0:
            return example
        c = self.thoughts_per_step()
        slots = simcot.step_slots(-(-example.n_thoughts // c), record.steps[:replaced], record.answer)
        return replace(example, step_targets=[slots[k // c] for k in range(example.n_thoughts)],
                       loss_counts={**example.loss_counts, "step": 1})

    def thoughts_per_step(self) -> int:
        """How many consecutive thoughts stand for one replaced step (and decode it)."""
        return max(self.cfg.c_thought, 1)

    def prepare_model(self, model, resuming: bool = False) -> None:
        # the halting head first: latentcot's submodules are attached in one order whether a model is built or
        # loaded (models.factory.ATTACHED_MODULES), and so come the parameters its optimizer state follows
        prepare_halting_head(model, bool(self.cfg.halting), resuming)
        if latent_projection(model) is not None and not resuming:
            # a model continued from a CODI/PCCoT run: Coconut feeds the hidden state back unchanged
            log.warning("note: train.init_from: its latent projection is dropped (coconut feeds the hidden state back "
                        "as it is)")
            detach_latent_projection(model)
        self.prepare_feedback(model, resuming)

    def prepare_feedback(self, model, resuming: bool) -> None:
        wanted, present = self.cfg.thought_norm == "embedding", thought_norm(model) is not None
        if resuming and wanted != present:
            raise ConfigError(f"config key 'method.thought_norm': {self.cfg.thought_norm}, but the checkpoint was "
                             f"trained with{'out' if wanted else ''} one; keep the run's setting, or start a new "
                             "run with train.init_from")
        if wanted and not present:
            attach_thought_norm(model)
        elif present and not wanted:
            log.warning("note: train.init_from: its thought norm is dropped (method.thought_norm is none)")
            detach_thought_norm(model)
        # teacher forcing is a training schedule; the model (and inference) feeds back its own mixture
        wanted = "token_mixture" if self.cfg.thought_feedback == "target_mixture" else self.cfg.thought_feedback
        present = thought_feedback(model)
        if resuming and wanted != present:
            raise ConfigError(f"config key 'method.thought_feedback': {wanted}, but the checkpoint was trained with "
                             f"{present}; keep the run's setting, or start a new run with train.init_from")
        if present != wanted and present != "hidden":
            log.warning(f"note: train.init_from: its thought feedback {present} is replaced by {wanted} "
                        "(method.thought_feedback)")
        set_thought_feedback(model, wanted)

    def prepare(self, records, device="cpu", encoding="text"):
        if self.cfg.step_decoder:
            simcot.check_steps_present(records, self.name)
        return super().prepare(records, device, encoding)

    def build_side_modules(self, model, resume_from: Path | None) -> None:
        if not self.cfg.step_decoder:
            if resume_from is not None and (resume_from / simcot.DECODER_NAME).exists():
                # its optimizer state holds the decoder's parameters too, and would not load
                raise ConfigError(f"config key 'method.step_decoder': false, but the checkpoint {resume_from} was "
                                 "trained with a step decoder; keep the run's setting, or start a new run with "
                                 "train.init_from")
            return
        reference = model.get_input_embeddings().weight
        decoder = (simcot.load_decoder(resume_from, reference.dtype, reference.device) if resume_from is not None
                   else simcot.new_decoder(model))
        self.side_modules = {simcot.DECODER_NAME: decoder}

    def collate(self, examples: Sequence[Example], pad_id: int, align: str = "thoughts") -> dict:
        batch = super().collate(examples, pad_id, align)
        if self.cfg.step_decoder:
            batch.update(simcot.decoder_tensors(examples, pad_id))
        return batch

    def batch_loss(self, model, batch: dict):
        if not self.cfg.step_decoder:
            return super().batch_loss(model, batch)
        passed = self.training_pass(model, batch)
        return self.with_step_loss(loss_of_pass(model, passed.hidden, batch), passed, batch)

    def with_step_loss(self, parts, passed, batch: dict):
        """``parts`` with the step decoder's summed loss added as the term ``step``."""
        # A micro-batch without thoughts has nothing to decode; under torchrun, sum_gradients gives the
        # decoder zeros there when another process's half had thoughts.
        if not self.cfg.step_decoder or "step_ids" not in batch:
            return parts
        step = simcot.decoder_loss_sum(self.side_modules[simcot.DECODER_NAME], passed.latents, batch)
        return parts._replace(terms={**parts.terms, "step": step})

    def loss_weights(self) -> dict[str, float]:
        weights = super().loss_weights()
        if self.cfg.step_decoder:
            weights["step"] = self.cfg.step_decoder_weight
        return weights

    def thought_cap(self) -> int:
        return self.cfg.max_thoughts if self.cfg.max_thoughts >= 0 else self.cfg.c_thought * self.cfg.max_latent_stage


class CoconutWithoutCurriculum(Coconut):
    """Ablation: train at the final stage from the first epoch (no curriculum)."""

    name = "coconut_wo_curriculum"

    def stage_at(self, epoch: int) -> int:
        return self.cfg.max_latent_stage + 1


class CoconutWithoutThought(StepCurriculum):
    """Ablation: the same curriculum removes steps, but no thoughts take their place."""

    name = "coconut_wo_thought"
    special_tokens = (BOT, EOT)
    thought_token = None

    def thoughts_for(self, stage: int, n_steps: int) -> int:
        return 0

    def default_thoughts(self) -> int:
        return 0


class CoconutPauseAsThought(StepCurriculum):
    """Ablation: thought positions hold a learned ``<pause>`` embedding instead of the hidden state."""

    name = "coconut_pause_as_thought"
    special_tokens = (BOT, EOT, PAUSE)
    thought_token = PAUSE
