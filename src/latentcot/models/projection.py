"""The latent projection of CODI and PCCoT: what a latent's input embedding is made of.

Coconut feeds the previous position's final hidden state back unchanged. CODI (Shen et al. 2025) and PCCoT
(Wu et al. 2025) pass it through ``Linear(d, p) -> GELU -> Linear(p, d) -> LayerNorm(d)`` first (``p = d``
for GPT-2 in both papers): the final hidden state lives in the LM head's space, the input embedding in the
embedding table's, and the projection learns the map between them.

Like the halting head, the projection is a submodule of the HuggingFace model (``latent_projection``), so it
travels in ``model.safetensors`` through checkpoints and exports; ``config.json`` records it under
``latentcot_latent_projection`` and :func:`restore_latent_projection` rebuilds it after ``from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError

CONFIG_KEY = "latentcot_latent_projection"
MODULE_NAME = "latent_projection"


class LatentProjection(nn.Module):
    def __init__(self, hidden_size: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_size, width), nn.GELU(), nn.Linear(width, hidden_size),
                                 nn.LayerNorm(hidden_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden)


def attach_submodule(model: nn.Module, name: str, module: nn.Module, config_key: str, spec: dict) -> nn.Module:
    """Put ``module`` inside ``model`` as ``name`` (on the model's device and dtype) and record ``spec`` under
    ``config_key`` in its config, so that a saved checkpoint can rebuild it."""
    reference = model.get_input_embeddings().weight
    module = module.to(device=reference.device, dtype=reference.dtype)
    model.add_module(name, module)
    setattr(model.config, config_key, spec)
    return module


def detach_submodule(model: nn.Module, name: str, module_type: type, config_key: str) -> None:
    """Remove what :func:`attach_submodule` put in ``model`` (if it is a ``module_type``) and its config record."""
    if isinstance(getattr(model, name, None), module_type):
        delattr(model, name)
    if hasattr(model.config, config_key):
        delattr(model.config, config_key)


def attach_latent_projection(model: nn.Module, width: int = -1) -> LatentProjection:
    """Give ``model`` a new projection (``width`` -1 = the hidden size) and record it in its config."""
    hidden = model.get_input_embeddings().embedding_dim
    width = hidden if width == -1 else width
    return attach_submodule(model, MODULE_NAME, LatentProjection(hidden, width), CONFIG_KEY, {"width": width})


def latent_projection(model: nn.Module) -> LatentProjection | None:
    found = getattr(model, MODULE_NAME, None)
    return found if isinstance(found, LatentProjection) else None


def detach_latent_projection(model: nn.Module) -> None:
    detach_submodule(model, MODULE_NAME, LatentProjection, CONFIG_KEY)


THOUGHT_NORM_KEY = "latentcot_thought_norm"
THOUGHT_NORM_NAME = "thought_norm"


class ThoughtNorm(nn.Module):
    """``method.thought_norm=embedding``: each fed-back thought keeps its direction and gets one learned
    length, started at the input embeddings' mean length (after CODI's projection, where there is one).

    Why: a pre-norm model's final hidden state is about sqrt(d) long (15 for the 4-layer 128-dim ProntoQA
    Llama, whose token embeddings are about 1 long), so at a thought position the residual stream starts
    15 times longer than at a token, and every block's write to it counts 15 times less there. Tied
    embeddings make the direction the one the LM head reads, so the rescaled thought sits where the
    embedding of its likeliest token would."""

    def __init__(self, length: float = 1.0):
        super().__init__()
        self.length = nn.Parameter(torch.tensor(float(length), dtype=torch.float64))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        norm = hidden.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(hidden.dtype).tiny)
        return hidden * (self.length / norm).to(hidden.dtype)


def attach_thought_norm(model: nn.Module) -> ThoughtNorm:
    """Give ``model`` a :class:`ThoughtNorm` whose length starts at its embedding rows' mean length."""
    length = model.get_input_embeddings().weight.detach().double().norm(dim=-1).mean().item()
    return attach_submodule(model, THOUGHT_NORM_NAME, ThoughtNorm(length), THOUGHT_NORM_KEY, {"kind": "embedding"})


def thought_norm(model: nn.Module) -> ThoughtNorm | None:
    found = getattr(model, THOUGHT_NORM_NAME, None)
    return found if isinstance(found, ThoughtNorm) else None


def detach_thought_norm(model: nn.Module) -> None:
    detach_submodule(model, THOUGHT_NORM_NAME, ThoughtNorm, THOUGHT_NORM_KEY)


def restore_thought_norm(model: nn.Module, directory: str | Path) -> None:
    """After ``from_pretrained``: rebuild the thought norm a checkpoint's config records and load its length."""
    if getattr(model.config, THOUGHT_NORM_KEY, None):
        load_prefixed_weights(attach_thought_norm(model), directory, THOUGHT_NORM_NAME)


THOUGHT_FEEDBACK_KEY = "latentcot_thought_feedback"


def thought_feedback(model: nn.Module) -> str:
    """What a model's fed-back thought is made of: ``hidden`` (the final hidden state, Coconut's) or
    ``token_mixture`` (:func:`token_mixture`). Recorded in the model's config, so checkpoints keep it."""
    return getattr(model.config, THOUGHT_FEEDBACK_KEY, None) or "hidden"


def set_thought_feedback(model: nn.Module, kind: str) -> None:
    if kind == "hidden":
        if hasattr(model.config, THOUGHT_FEEDBACK_KEY):
            delattr(model.config, THOUGHT_FEEDBACK_KEY)
    else:
        setattr(model.config, THOUGHT_FEEDBACK_KEY, kind)


def token_mixture(model: nn.Module):
    """``method.thought_feedback=token_mixture``: the thought fed back is the input embeddings averaged under
    the LM head's next-token distribution at that position, ``softmax(head(h)) @ E``.

    Why: the thought then lies in the span of the token embeddings the model already reads, so a lookup
    the cot model keys on a written token (the ProntoQA rule of the chain's last concept) can be keyed on
    the thought with the same attention; a confident position feeds back nearly its token's embedding, an
    unsure one a weighted superposition of its candidates (the breadth-first frontier Zhu et al. 2025 find
    in Coconut's thoughts). The distribution is computed in float32 at least, and the gradient flows
    through the softmax."""
    head, table = model.get_output_embeddings(), model.get_input_embeddings()

    def mix(hidden: torch.Tensor) -> torch.Tensor:
        logits = head(hidden)
        probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        return (probs.to(table.weight.dtype) @ table.weight).to(hidden.dtype)

    return mix


def feedback(model: nn.Module):
    """The map from a final hidden state to the next latent's input embedding: the token mixture, the
    model's projection and its thought norm where it has them (in that order), or the identity (Coconut)."""
    steps = [m for m in (token_mixture(model) if thought_feedback(model) == "token_mixture" else None,
                         latent_projection(model), thought_norm(model)) if m is not None]
    if not steps:
        return lambda hidden: hidden
    if len(steps) == 1:
        return steps[0]

    def composed(hidden: torch.Tensor) -> torch.Tensor:
        for step in steps:
            hidden = step(hidden)
        return hidden

    return composed


def load_prefixed_weights(module: nn.Module, directory: str | Path, prefix: str) -> None:
    """Load ``module``'s weights from the tensors under ``prefix.`` in a checkpoint's safetensors files;
    one clear error when some are missing."""
    from safetensors import safe_open

    prefix = prefix + "."
    state = {}
    for path in sorted(Path(directory).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                if key.startswith(prefix):
                    state[key[len(prefix):]] = handle.get_tensor(key)
    missing = set(module.state_dict()) - set(state)
    if missing:
        raise CheckpointError(f"{directory}: config.json records {prefix[:-1]} but the weights lack "
                              f"{', '.join(sorted(prefix + k for k in missing))}")
    module.load_state_dict(state)


def restore_latent_projection(model: nn.Module, directory: str | Path) -> None:
    """After ``from_pretrained``: rebuild the projection a checkpoint's config records and load its weights."""
    spec = getattr(model.config, CONFIG_KEY, None)
    if not spec:
        return
    load_prefixed_weights(attach_latent_projection(model, int(spec.get("width", -1))), directory, MODULE_NAME)
