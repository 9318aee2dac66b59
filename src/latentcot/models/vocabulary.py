"""Growing a model's embedding tables to its tokenizer: the one step both the model factory and the
pair embedding (data.encoding=graph_edges) take after adding tokens."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..errors import ConfigError


def resize_for_tokenizer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                         init_from: str | None = None) -> list[int]:
    """Grow the embeddings to the tokenizer; new rows copy an existing token's embedding.

    Copying a trained embedding (the Coconut paper initialises its new markers this way) starts new
    tokens at a sensible scale instead of noise. Returns the ids that got new rows.
    """
    old = model.get_input_embeddings().weight.shape[0]
    new = len(tokenizer)
    if new <= old:
        return []
    source_token = init_from or tokenizer.eos_token
    source_id = tokenizer.convert_tokens_to_ids(source_token)
    if source_id is None or source_id == tokenizer.unk_token_id and source_token != tokenizer.unk_token:
        raise ConfigError(f"model.init_new_tokens_from: token {source_token!r} is not in the vocabulary",
                          "model.init_new_tokens_from")
    model.resize_token_embeddings(new, mean_resizing=False)
    new_ids = list(range(old, new))
    with torch.no_grad():
        inputs = model.get_input_embeddings().weight
        inputs[old:new] = inputs[source_id]
        outputs = model.get_output_embeddings()
        if outputs is not None and outputs.weight.data_ptr() != inputs.data_ptr():
            outputs.weight[old:new] = outputs.weight[source_id]
    return new_ids
