"""CODI (Shen et al., EMNLP 2025) and PCCoT (Wu et al., EMNLP 2025): latents taught by self-distillation.

One model plays two parts in each step. The *teacher* reads the question, the written steps and the answer
and is trained on steps and answer. The *student* reads the question, ``<bot>``, a fixed number of latents
(each the previous position's final hidden state through the latent projection,
:mod:`latentcot.models.projection`), ``<eot>`` and the answer, and is trained on the answer. The
distillation pulls the student's hidden states at the position before the answer (``<eot>`` in both
sequences, the part CODI's ``:`` of "The answer is:" plays) toward the teacher's, at every layer: a SmoothL1
(or MSE) distance averaged over the hidden dimensions, divided by the spread (standard deviation) of the
teacher's state at that layer, averaged over layers, with the teacher side detached (a target, not a
thing to move). The loss is student CE + ``teacher_weight`` x teacher CE + ``distill_weight`` x distillation.

Two choices differ from the released code, both so that one step is the same whatever the batch is split
into (gradient accumulation, several processes): the standard deviation is each problem's own (over the
hidden dimensions) rather than the whole batch's, and the teacher's states come from the same pass as its
loss, detached, not from a second no-grad pass (equal without dropout).

PCCoT replaces the sequential latent pass by Jacobi iterations over all latents at once
(:func:`~latentcot.models.continuous.jacobi_forward`) and distils over the blocks' outputs without the
embedding output; everything else is CODI's. Neither has a curriculum: every epoch trains all latents.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Sequence

import torch
import torch.nn.functional as F

from ..examples import label_count
from ..models.continuous import collate, jacobi_forward, lm_loss_sum, loss_of_pass, position_ids
from ..models.projection import attach_latent_projection, detach_latent_projection, feedback, latent_projection
from ..tokenization import EOT
from .base import ContinuousThoughts, Example, TokenizedRecord, assemble
from .coconut import Coconut
from ..errors import ConfigError


def distillation_sum(student_layers: Sequence[torch.Tensor], teacher_layers: Sequence[torch.Tensor],
                     student_at: torch.Tensor, teacher_at: torch.Tensor, kind: str = "smooth_l1") -> torch.Tensor:
    """Summed over the batch's problems: the mean over layers of distance(student, teacher) / std(teacher),
    each layer's states taken at the row's own position (``student_at``, ``teacher_at``: (batch,))."""
    rows = torch.arange(student_at.shape[0], device=student_at.device)
    distance = F.smooth_l1_loss if kind == "smooth_l1" else F.mse_loss
    per_layer = []
    for student, teacher in zip(student_layers, teacher_layers):
        s = student[rows, student_at]
        t = teacher[rows, teacher_at].detach()
        dtype = torch.promote_types(s.dtype, torch.float32)
        s, t = s.to(dtype), t.to(dtype)
        per_layer.append(distance(s, t, reduction="none").mean(-1) / t.std(-1))
    return torch.stack(per_layer).mean(0).sum()


class CODI(Coconut):
    name = "codi"
    paper_latents = 6  # Shen et al.: 6 latents on GSM8k-Aug
    distill_embeddings = True  # CODI distils the embedding output too; PCCoT only the blocks'

    @property
    def n_latents(self) -> int:
        return self.cfg.latents if self.cfg.latents >= 1 else self.paper_latents

    # -- the model ---------------------------------------------------------------------------------
    def thoughts_per_step(self) -> int:
        return 1  # latent k decodes step k (method.c_thought is Coconut's)

    # min(steps, latents): Coconut's reads its curriculum (c_thought, max_latent_stage), which CODI has not
    needed_thoughts = ContinuousThoughts.needed_thoughts

    def prepare_model(self, model, resuming: bool = False) -> None:
        present = latent_projection(model)
        if resuming and self.cfg.projection != (present is not None):
            raise ConfigError(f"config key 'method.projection': {str(self.cfg.projection).lower()}, but the checkpoint "
                             f"was trained with{'out' if self.cfg.projection else ''} one; keep the run's setting, or "
                             "start a new run with train.init_from")
        if self.cfg.projection and present is None:
            attach_latent_projection(model, self.cfg.projection_dim)
        elif not self.cfg.projection and present is not None:
            detach_latent_projection(model)
        elif present is not None:
            width = present.net[0].out_features
            wanted = model.get_input_embeddings().embedding_dim if self.cfg.projection_dim == -1 else self.cfg.projection_dim
            if width != wanted:
                raise ConfigError(f"config key 'method.projection_dim': {self.cfg.projection_dim}, but the model it "
                                 f"continues already has a latent projection of width {width}")
        self.prepare_feedback(model, resuming)

    # -- schedule and rendering --------------------------------------------------------------------
    def stage_at(self, epoch: int) -> int:
        return 0

    def eval_thoughts(self, epoch: int) -> int | None:
        return None

    def default_thoughts(self) -> int:
        fixed = self.cfg.inference_thoughts
        return fixed if isinstance(fixed, int) and fixed >= 0 else self.n_latents

    def thought_cap(self) -> int:
        return self.n_latents

    def teacher_example(self, record: TokenizedRecord) -> Example:
        """Question, steps, ``<eot>`` and the answer; the loss on steps and answer."""
        steps = [ids for step in record.steps for ids in step]
        return assemble([(record.question, False), (steps, True), ([self.token_ids[EOT]], False),
                         (record.answer, True)])

    def scheduled_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        student = self.render(record, self.n_latents, 0)
        teacher = self.teacher_example(record)
        student = replace(student, companion=teacher,
                          loss_counts={**student.loss_counts, "teacher": label_count(teacher), "distill": 1})
        return self.with_step_targets(student, record, len(record.steps))

    # -- the loss ----------------------------------------------------------------------------------
    def collate(self, examples: Sequence[Example], pad_id: int, align: str = "thoughts") -> dict:
        batch = super().collate(examples, pad_id, align)
        if any(e.companion is None for e in examples):
            return batch  # inference prompts carry no teacher
        teacher = collate([e.companion for e in examples], pad_id, None, align="right")
        eot = self.token_ids[EOT]
        batch.update(teacher_input_ids=teacher["input_ids"], teacher_attention_mask=teacher["attention_mask"],
                     teacher_labels=teacher["labels"],
                     student_at=_first_column(batch["input_ids"] == eot),
                     teacher_at=_first_column(teacher["input_ids"] == eot))
        return batch

    def batch_loss(self, model, batch: dict):
        student = self.training_pass(model, batch, return_layers=True)
        parts = loss_of_pass(model, student.hidden, batch)
        mask = batch["teacher_attention_mask"]
        base = model.base_model
        teacher = base(input_ids=batch["teacher_input_ids"], attention_mask=mask, position_ids=position_ids(mask),
                       output_hidden_states=True, use_cache=False)
        teacher_sum, _ = lm_loss_sum(model, teacher.last_hidden_state, batch["teacher_labels"])
        first = 0 if self.distill_embeddings else 1
        distill = distillation_sum(student.layers[first:], teacher.hidden_states[first:], batch["student_at"],
                                   batch["teacher_at"], self.cfg.distill_loss)
        parts = parts._replace(terms={**parts.terms, "teacher": teacher_sum, "distill": distill})
        return self.with_step_loss(parts, student, batch)

    def loss_weights(self) -> dict[str, float]:
        return {**super().loss_weights(), "teacher": self.cfg.teacher_weight, "distill": self.cfg.distill_weight}


def _first_column(hits: torch.Tensor) -> torch.Tensor:
    """Per row, the first column where ``hits`` is true (every row must have one)."""
    if not bool(hits.any(1).all()):
        raise ValueError("every CODI sequence needs <eot> before its answer")
    return hits.long().argmax(1)


class PCCoT(CODI):
    """PCCoT: CODI's losses, with the latents computed in parallel by ``method.jacobi_iterations`` Jacobi
    updates instead of one after another (Wu et al.: 24 latents, 3 iterations)."""

    name = "pccot"
    paper_latents = 24
    distill_embeddings = False

    def forward_hidden(self, model, input_ids, attention_mask, thought_mask=None, cache=None,
                       return_layers: bool = False, previous=None, edit=None):
        return jacobi_forward(model, input_ids, attention_mask, thought_mask, cache, return_layers,
                              iterations=self.cfg.jacobi_iterations, edit=edit, previous=previous)

    def prompt_calls(self, thought_mask, width: int) -> int:
        """Pass 0 (question, ``<bot>``, placeholders), then one pass per iteration, the last with ``<eot>``."""
        if thought_mask is None or not bool(thought_mask.any()):
            return 1
        end = int(thought_mask.any(0).nonzero().flatten()[-1]) + 1
        t = self.cfg.jacobi_iterations
        return 1 + t if t else 1 + (1 if end < width else 0)

    def fill_thoughts_naive(self, model, embeds, columns: Sequence[int]):
        """Jacobi without a cache: each iteration re-runs the sequence up to the latent block and sets every
        latent from the output one position before it."""
        if not columns:
            return embeds, 0
        start, end = columns[0], columns[-1] + 1
        project = feedback(model)
        for _ in range(self.cfg.jacobi_iterations):
            states = model(inputs_embeds=embeds[:, :end], output_hidden_states=True, use_cache=False).hidden_states[-1]
            embeds = torch.cat([embeds[:, :start], project(states[:, start - 1:end - 1]).to(embeds.dtype),
                                embeds[:, end:]], dim=1)
        return embeds, self.cfg.jacobi_iterations
