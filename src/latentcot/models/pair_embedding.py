"""The pair embedding of ``data.encoding=graph_edges``: one token an edge, read as source[s] + destination[t].

A graph_edges question writes each edge ``s -> t`` as ONE token ``<e{s}_{t}>`` (:mod:`latentcot.data.encodings`).
The N x N pair tokens (N = ``data.node_ids``) are a contiguous block of the vocabulary, added in s-major
order, so token ``first_id + s * N + t`` is the pair (s, t). Their input embedding is not a row of the
embedding table but the sum of a source-role embedding of s and a destination-role embedding of t, two
learned tables of N rows each (:class:`PairEmbedding`): what the model learns about an id in one pair holds
for all N x N. A forward hook on the model's input embedding module puts that sum in place of the table's
row wherever a pair token stands, so the ids flow through every path the model has (training, the KV-cached
generation, the continuous-thought passes that call ``get_input_embeddings()`` themselves). Node tokens
`` 0`` .. `` N-1``, ``Q``, ``R``, steps and answers stay ordinary tokens, and the LM head (tied to the
embedding table) still scores them; the pair tokens' own rows only serve as LM-head rows nothing trains
towards.

Like the halting head, the module is a submodule of the HuggingFace model (``pair_embedding``), recorded in
``config.json`` under ``latentcot_pair_embedding`` (``first_id``, ``nodes``), rebuilt with its hook by
:func:`restore_pair_embedding` after ``from_pretrained``; :func:`materialise_pair_embedding` writes the sums
into the embedding table of an untied copy, which plain transformers loads (``latentcot export``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..data.encodings import edge_token
from ..errors import ConfigError, UsageError
from . import halting, projection
from .vocabulary import resize_for_tokenizer

CONFIG_KEY = "latentcot_pair_embedding"
MODULE_NAME = "pair_embedding"
# latentcot's other submodules, which come after this one in a model (the order of ATTACHED_MODULES), so
# that a run's parameters, and so its optimizer state, have one order whichever way the model was built
_ATTACHED_AFTER = (halting.MODULE_NAME, projection.MODULE_NAME, projection.THOUGHT_NORM_NAME)


class PairEmbedding(nn.Module):
    """``source`` and ``destination``: one row per node id; pair token ``first_id + s * nodes + t`` is
    embedded as ``source[s] + destination[t]``."""

    def __init__(self, first_id: int, nodes: int, hidden_size: int, std: float = 0.02):
        super().__init__()
        self.first_id = int(first_id)
        self.nodes = int(nodes)
        self.source = nn.Embedding(self.nodes, hidden_size)
        self.destination = nn.Embedding(self.nodes, hidden_size)
        for table in (self.source, self.destination):
            nn.init.normal_(table.weight, std=std)

    @property
    def size(self) -> int:
        return self.nodes * self.nodes

    def extra_repr(self) -> str:
        return f"first_id={self.first_id}, nodes={self.nodes}"

    def rows(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The embedding of every pair token, s-major (row ``s * nodes + t``), computed in ``dtype`` (the
        tables' by default) as :meth:`embed` computes it, so the two agree bit for bit."""
        dtype = dtype or self.source.weight.dtype
        source, destination = self.source.weight.to(dtype), self.destination.weight.to(dtype)
        return (source[:, None, :] + destination[None, :, :]).reshape(self.size, -1)

    def embed(self, ids: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """``embedded`` (the table's rows for ``ids``) with source[s] + destination[t] at the pair tokens,
        computed in ``embedded``'s dtype."""
        offset = ids - self.first_id
        inside = (offset >= 0) & (offset < self.size)
        offset = offset.clamp(0, self.size - 1)
        s = torch.div(offset, self.nodes, rounding_mode="floor")
        t = offset - s * self.nodes
        pair = self.source(s).to(embedded.dtype) + self.destination(t).to(embedded.dtype)
        return torch.where(inside.unsqueeze(-1), pair, embedded)

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> torch.Tensor:
        ids = args[0] if args else kwargs.get("input", kwargs.get("input_ids"))
        return self.embed(ids, output)

    def install(self, model: nn.Module) -> None:
        """Hook the model's (current) input embedding module; any pair hook it had goes first, so a model
        never has two."""
        embeddings = model.get_input_embeddings()
        remove_hooks(embeddings)
        embeddings.register_forward_hook(self._hook, with_kwargs=True)


def remove_hooks(embeddings: nn.Module) -> None:
    """Take every :class:`PairEmbedding` hook off an embedding module."""
    for key, hook in list(embeddings._forward_hooks.items()):
        if getattr(hook, "__func__", None) is PairEmbedding._hook:
            del embeddings._forward_hooks[key]
            embeddings._forward_hooks_with_kwargs.pop(key, None)
            embeddings._forward_hooks_always_called.pop(key, None)


def hook_count(model: nn.Module) -> int:
    """How many pair hooks the model's input embedding module carries (0 or 1)."""
    hooks = model.get_input_embeddings()._forward_hooks.values()
    return sum(getattr(h, "__func__", None) is PairEmbedding._hook for h in hooks)


def pair_embedding(model: nn.Module) -> PairEmbedding | None:
    found = getattr(model, MODULE_NAME, None)
    return found if isinstance(found, PairEmbedding) else None


def attach_pair_embedding(model: nn.Module, first_id: int, nodes: int) -> PairEmbedding:
    """Give ``model`` new source and destination tables for the pair tokens ``first_id ..
    first_id + nodes**2 - 1``, hook its input embeddings, and record the module in its config.

    Each table starts at the embedding rows' spread over sqrt(2), so a pair's sum starts at a token's."""
    table = model.get_input_embeddings().weight
    if first_id + nodes * nodes > table.shape[0]:
        raise ValueError(f"the pair tokens {first_id}..{first_id + nodes * nodes - 1} lie past the model's "
                         f"{table.shape[0]} embeddings")
    reference = table.detach()[:first_id].float()
    std = reference.std().item() / math.sqrt(2) if reference.numel() > 1 else 0.02
    old = pair_embedding(model)
    if old is not None:
        detach_pair_embedding(model)
    module = PairEmbedding(first_id, nodes, table.shape[1], std=std if math.isfinite(std) and std > 0 else 0.02)
    module = projection.attach_submodule(model, MODULE_NAME, module, CONFIG_KEY,
                                         {"first_id": int(first_id), "nodes": int(nodes)})
    for name in _ATTACHED_AFTER:
        if name in model._modules:
            model._modules[name] = model._modules.pop(name)
    module.install(model)
    return module


def detach_pair_embedding(model: nn.Module) -> None:
    """Remove the module, its hook and its config record."""
    remove_hooks(model.get_input_embeddings())
    projection.detach_submodule(model, MODULE_NAME, PairEmbedding, CONFIG_KEY)


def restore_pair_embedding(model: nn.Module, directory: str | Path) -> None:
    """After ``from_pretrained``: rebuild the tables a checkpoint's config records, load them, hook them."""
    spec = getattr(model.config, CONFIG_KEY, None)
    if not spec:
        return
    module = attach_pair_embedding(model, int(spec["first_id"]), int(spec["nodes"]))
    projection.load_prefixed_weights(module, directory, MODULE_NAME)


# --------------------------------------------------------------------------- the tokenizer's side


def pair_token_names(nodes: int) -> list[str]:
    """The pair tokens in vocabulary order (s-major)."""
    return [edge_token(s, t) for s in range(nodes) for t in range(nodes)]


def add_pair_tokens(tokenizer, nodes: int, where: str = "the tokenizer") -> int:
    """Give the tokenizer the ``nodes`` x ``nodes`` pair tokens as one contiguous block (idempotent) and
    return the first one's id. Each absorbs the space before it, so `` <e2_5> <e0_2> Q 16`` reads as
    [pair, pair, `` Q``, `` 16``] with nothing between."""
    from tokenizers import AddedToken

    from ..data.encodings import _EDGE_TOKEN_RE

    names = pair_token_names(nodes)
    vocab = tokenizer.get_vocab()
    held = sum(1 for token in vocab if _EDGE_TOKEN_RE.fullmatch(token))
    if held and (held != len(names) or any(name not in vocab for name in names)):
        raise ConfigError(f"config key 'data.node_ids': {nodes}, but {where} already holds {held} pair tokens "
                          f"(for another number of node ids); keep that run's data.node_ids", "data.node_ids")
    if not held:
        tokenizer.add_tokens([AddedToken(name, lstrip=True, rstrip=False, single_word=False, normalized=False,
                                         special=False) for name in names])
    ids = tokenizer.convert_tokens_to_ids(names)
    if ids != list(range(ids[0], ids[0] + len(names))):
        raise ConfigError(f"{where}: the pair tokens do not have consecutive ids (data.encoding=graph_edges)",
                          "data.encoding")
    return ids[0]


def add_node_tokens(tokenizer, nodes: int) -> list[str]:
    """Make every node id `` 0`` .. `` N-1`` a known token: a word-level tokenizer that never saw one (a
    run's tokenizer reused with a larger ``data.node_ids``) gets it as an added token. Returns those added."""
    from tokenizers import AddedToken

    unk = tokenizer.unk_token_id
    if unk is None:
        return []  # a tokenizer without an unknown token (byte-level BPE) reads every id already
    texts = [f" {i}" for i in range(nodes)]
    missing = [t for t, ids in zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"]) if unk in ids]
    if missing:
        tokenizer.add_tokens([AddedToken(t, single_word=True, normalized=False, special=False) for t in missing])
    return missing


def prepare_pair_model(model: nn.Module, tokenizer, nodes: int, where: str = "the tokenizer") -> PairEmbedding:
    """What ``data.encoding=graph_edges`` needs of a model and its tokenizer: every node token, the pair
    tokens, embedding rows for them (new rows copy the unknown token's, which a trained model never
    predicts, so the pair tokens start as unlikely outputs), and the pair embedding: the model's own if it
    has one for the same tokens (a resumed run, or ``train.init_from`` a graph_edges run), rehooked after
    the resize, else a new one."""
    if nodes < 1:
        raise ConfigError(f"config key 'data.node_ids': must be at least 1, got {nodes}", "data.node_ids")
    add_node_tokens(tokenizer, nodes)
    first_id = add_pair_tokens(tokenizer, nodes, where)
    resize_for_tokenizer(model, tokenizer, tokenizer.unk_token if tokenizer.unk_token_id is not None else None)
    module = pair_embedding(model)
    if module is not None and (module.first_id, module.nodes) != (first_id, nodes):
        raise ConfigError(f"config key 'data.node_ids': {nodes}, but the model's pair embedding covers "
                          f"{module.nodes} node ids from token {module.first_id}; keep that run's data.node_ids",
                          "data.node_ids")
    if module is None:
        return attach_pair_embedding(model, first_id, nodes)
    module.install(model)
    return module


# --------------------------------------------------------------------------- export


def materialise_pair_embedding(model: nn.Module) -> None:
    """Make the model a plain transformers one that computes the same logits: the LM head gets its own copy
    of the (tied) embedding table, untouched, and the input table's pair rows become source[s] +
    destination[t]; then the module, its hook and its config record go. Refuses, in one line, a model
    whose LM head cannot be told apart from its input embeddings."""
    module = pair_embedding(model)
    if module is None:
        return
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    arch = type(model).__name__
    if outputs is None or not isinstance(getattr(outputs, "weight", None), torch.Tensor):
        raise UsageError(f"export: {arch} has no separate LM head, so the pair tokens' input rows cannot differ "
                         "from their output rows; data.encoding=graph_edges runs of it cannot be exported")
    if not hasattr(model.config, "tie_word_embeddings"):
        raise UsageError(f"export: {arch}'s config has no tie_word_embeddings to untie its embeddings with; "
                         "data.encoding=graph_edges runs of it cannot be exported")
    with torch.no_grad():
        if outputs.weight.data_ptr() == inputs.weight.data_ptr():
            outputs.weight = nn.Parameter(inputs.weight.detach().clone(), requires_grad=outputs.weight.requires_grad)
        model.config.tie_word_embeddings = False
        if hasattr(model, "get_expanded_tied_weights_keys"):
            model.all_tied_weights_keys = model.get_expanded_tied_weights_keys(all_submodels=True)
        inputs.weight[module.first_id:module.first_id + module.size] = module.rows(inputs.weight.dtype)
    detach_pair_embedding(model)


__all__ = ["CONFIG_KEY", "MODULE_NAME", "PairEmbedding", "add_node_tokens", "add_pair_tokens", "attach_pair_embedding",
           "detach_pair_embedding", "hook_count", "materialise_pair_embedding", "pair_embedding", "pair_token_names",
           "prepare_pair_model", "remove_hooks", "restore_pair_embedding"]
