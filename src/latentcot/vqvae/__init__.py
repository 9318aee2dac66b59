"""Token Assorted's VQ-VAE: discrete latent codes for chunks of reasoning traces.

Needs the ``assorted`` extra (``pip install latentcot[assorted]``) to build a model; importing this
package does not. Names are loaded on first use so that ``latentcot --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import VQVAEConfig, VQVAEModelConfig, VQVAETrainConfig, load_vqvae_config

_LAZY = {
    "VQVAE": "model", "ChunkExample": "model", "chunk_record": "model", "pad_chunk": "model",
    "chunk_examples": "model", "collate_chunks": "model", "codebook_stats": "model",
    "train_vqvae": "train", "evaluate_vqvae": "train", "load_vqvae": "io", "save_vqvae": "io",
    "build_vqvae": "io", "vqvae_tokenizer": "io", "decode_codes_to_text": "io", "encode_record": "io",
}

__all__ = ["VQVAEConfig", "VQVAEModelConfig", "VQVAETrainConfig", "load_vqvae_config", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
