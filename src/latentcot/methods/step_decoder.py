"""SIM-CoT's step supervision (ICLR 2026): each latent must be decodable into the written step it replaces.

An auxiliary decoder, a separate trainable copy of the base model, takes latent k alone as a one-position
prefix embedding and must write the k-th step; its cross-entropy (a mean over the step's tokens, then over
the problem's latents, then over problems) is added to the method's loss with ``method.step_decoder_weight``.
There is no stop-gradient: the loss reaches the latents and shapes them. When a problem has more steps than
latents the extra steps merge into the last latent's target; latents beyond the steps take the answer
(:func:`step_slots`). The decoder is a side module (:attr:`~latentcot.methods.base.Method.side_modules`):
checkpointed so that a run resumes, never exported, never used at inference.

SIM-CoT's released Coconut script never hands the step targets to the model, so on that path the loss it is
named for never runs; here the targets are part of every rendered problem (``Example.step_targets``) and a
test checks that the latents receive its gradient.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from ..models.halting import detach_halting_head
from ..models.pair_embedding import detach_pair_embedding
from ..models.projection import detach_latent_projection, detach_thought_norm, set_thought_feedback
from .base import IGNORE_INDEX, Example
from ..errors import ConfigError

DECODER_NAME = "step_decoder"


def step_slots(n_slots: int, steps: Sequence[Sequence[int]], answer: Sequence[int]) -> list[list[int]]:
    """The target of each of ``n_slots`` latents: step k for latent k; the steps beyond the last latent merge
    into its target; latents beyond the steps take the answer."""
    slots = []
    for k in range(n_slots):
        if k >= len(steps):
            slots.append(list(answer))
        elif k == n_slots - 1:
            slots.append([t for step in steps[k:] for t in step])
        else:
            slots.append(list(steps[k]))
    return slots


def check_steps_present(records, name: str) -> None:
    """One error line before training when there are no steps to supervise the latents with."""
    if not any(r.steps for r in records):
        raise ConfigError(f"config key 'method.step_decoder': method {name!r} supervises each latent with its written "
                         "step, but no training problem has steps (data.train)")


def new_decoder(model):
    """A trainable copy of the base model, without latentcot's own submodules (projection, thought norm,
    halting head, pair embedding) and with the plain thought feedback."""
    decoder = copy.deepcopy(model)
    # train.compile puts a compiled forward on the model's instance, which deepcopy keeps as the same
    # object: bound to the MAIN model's weights. The copy must run its own.
    decoder.base_model.__dict__.pop("forward", None)
    detach_latent_projection(decoder)
    detach_thought_norm(decoder)
    set_thought_feedback(decoder, "hidden")
    detach_halting_head(decoder)
    # it decodes written steps (node tokens), never a question's pair tokens
    detach_pair_embedding(decoder)
    return decoder


def load_decoder(checkpoint: Path, dtype: torch.dtype, device):
    directory = checkpoint / DECODER_NAME
    if not (directory / "config.json").exists():
        raise ConfigError(f"config key 'method.step_decoder': true, but the checkpoint {checkpoint} was trained "
                         "without a step decoder; keep the run's setting, or start a new run with train.init_from")
    return AutoModelForCausalLM.from_pretrained(directory, dtype=dtype).to(device)


def decoder_tensors(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """One decoder row per (problem, latent) pair: a placeholder position for the latent, then its target.

    ``step_weight`` holds, on each target token, 1 / (tokens of its target x latents of its problem), so the
    weighted sum of token losses is each problem's mean over latents of its mean over tokens."""
    pairs = [(row, k, target) for row, e in enumerate(examples) for k, target in enumerate(e.step_targets or [])]
    if not pairs:
        return {}
    per_row = [len(e.step_targets or []) for e in examples]
    width = 1 + max(len(t) for _, _, t in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    weight = torch.zeros((len(pairs), width), dtype=torch.float64)
    for i, (row, _, target) in enumerate(pairs):
        n = len(target)
        ids[i, 1:1 + n] = torch.tensor(target, dtype=torch.long)
        labels[i, 1:1 + n] = torch.tensor(target, dtype=torch.long)
        mask[i, :1 + n] = 1
        weight[i, 1:1 + n] = 1.0 / (max(n, 1) * per_row[row])
    return {"step_ids": ids, "step_labels": labels, "step_mask": mask, "step_weight": weight,
            "step_row": torch.tensor([p[0] for p in pairs]), "step_latent": torch.tensor([p[1] for p in pairs])}


def decoder_loss_sum(decoder, latents: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed over problems: the mean over a problem's latents of the decoder's mean token loss on its step."""
    embeds = decoder.get_input_embeddings()(batch["step_ids"])
    prefix = latents[batch["step_row"], batch["step_latent"]].to(embeds.dtype)
    embeds = torch.cat([prefix[:, None], embeds[:, 1:]], dim=1)
    mask = batch["step_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    hidden = decoder.base_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                use_cache=False).last_hidden_state
    targets = batch["step_labels"][:, 1:]
    selected = targets != IGNORE_INDEX
    logits = decoder.get_output_embeddings()(hidden[:, :-1][selected])
    dtype = torch.promote_types(logits.dtype, torch.float32)
    losses = F.cross_entropy(logits.to(dtype), targets[selected], reduction="none")
    return (losses * batch["step_weight"][:, 1:][selected].to(dtype)).sum()
