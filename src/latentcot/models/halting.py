"""Adaptive thinking: a halting head decides, thought by thought, when a problem has thought enough.

The Coconut paper pads every problem to one fixed number of thoughts and names, as an alternative that
worked as well, a binary classifier on the latent thoughts that decides when to stop thinking and switch
to language. This module is that classifier.

Decision ``j`` (``j = 0, 1, ...``: "stop after j thoughts?") is read from the final hidden state at the
position before the would-be thought ``j + 1``: ``<bot>`` for ``j = 0``, thought ``j`` after that. These
are the same hidden states the next thought would take as its input, so the head sees exactly what the
model would think with. Its training target is 1 once the problem's latent steps are used up
(``j >= c_thought * min(steps, max_latent_stage)``), else 0; it is trained with the main loss, through
the whole curriculum (:func:`halting_loss_sum`).

The head lives inside the HuggingFace model as the ``halting_head`` submodule, so its weights travel in
``model.safetensors`` through checkpoints, resumes and exports; ``config.json`` records it under
``latentcot_halting_head`` and :func:`restore_halting_head` puts it back after ``from_pretrained``
(which does not know the submodule).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .projection import attach_submodule, detach_submodule, load_prefixed_weights
from ..errors import UsageError

CONFIG_KEY = "latentcot_halting_head"
MODULE_NAME = "halting_head"
IGNORE_TARGET = -1.0  # halting-target value of positions that make no decision


class HaltingHead(nn.Module):
    """A two-layer classifier on one hidden state: the logit of "stop thinking here"."""

    def __init__(self, hidden_size: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_size, width), nn.GELU(), nn.Linear(width, 1))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden).squeeze(-1)


def _hidden_size(model: nn.Module) -> int:
    return model.get_input_embeddings().embedding_dim


def attach_halting_head(model: nn.Module, width: int = 0) -> HaltingHead:
    """Give ``model`` a new halting head (``width`` 0 = the hidden size) and record it in its config."""
    hidden = _hidden_size(model)
    width = width or hidden
    return attach_submodule(model, MODULE_NAME, HaltingHead(hidden, width), CONFIG_KEY, {"width": width})


def halting_head(model: nn.Module) -> HaltingHead | None:
    """The model's halting head, or None."""
    head = getattr(model, MODULE_NAME, None)
    return head if isinstance(head, HaltingHead) else None


def require_halting_head(model: nn.Module) -> HaltingHead:
    """The model's halting head; one clear error when it has none."""
    head = halting_head(model)
    if head is None:
        raise UsageError("n_thoughts 'auto' needs a halting head, and this model was trained without one "
                         "(train it with method.halting=true)")
    return head


def detach_halting_head(model: nn.Module) -> None:
    """Remove the head and its config record (a run that continues a model without training its head)."""
    detach_submodule(model, MODULE_NAME, HaltingHead, CONFIG_KEY)


def restore_halting_head(model: nn.Module, directory: str | Path) -> None:
    """After ``from_pretrained``: rebuild the head a checkpoint's config records and load its weights."""
    spec = getattr(model.config, CONFIG_KEY, None)
    if not spec:
        return
    load_prefixed_weights(attach_halting_head(model, int(spec.get("width", 0))), directory, MODULE_NAME)


def needed_thoughts(n_steps: int, c_thought: int, max_latent_stage: int) -> int:
    """Thoughts after which a problem's latent steps are used up: the halting head's first 'stop'."""
    return c_thought * min(n_steps, max_latent_stage)


def decision_count(n_thoughts: int) -> int:
    """Halting decisions a problem with ``n_thoughts`` thoughts makes: at ``<bot>`` and after each thought."""
    return n_thoughts + 1


def decision_targets(n_decisions: int, needed: int) -> list[float]:
    """Targets of decisions ``0 .. n_decisions - 1``: stop (1) once ``needed`` thoughts are done."""
    return [1.0 if j >= needed else 0.0 for j in range(n_decisions)]


def halting_loss_sum(model: nn.Module, hidden: torch.Tensor, targets: torch.Tensor
                     ) -> tuple[torch.Tensor, int]:
    """Summed binary cross-entropy of the head over the decision positions, and their count."""
    head = halting_head(model)
    selected = targets != IGNORE_TARGET
    if head is None or not bool(selected.any()):
        return hidden.new_zeros(()), 0
    logits = head(hidden[selected])
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets[selected].float(), reduction="sum")
    return loss, int(selected.sum())


def stop_probability(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """P(stop) of each row's hidden state (inference)."""
    return torch.sigmoid(require_halting_head(model)(hidden).float())
