"""Tiny models and data that tests build themselves (no network, seconds on CPU)."""

from __future__ import annotations

from latentcot.config import ModelConfig, TokenizerConfig
from latentcot.data.generators import generate
from latentcot.models import build_model_and_tokenizer

SMALL_PROSQA = {"min_nodes": 8, "max_nodes": 10}


def tiny_prosqa(n: int = 16, seed: int = 0):
    return generate("prosqa", n, seed, **SMALL_PROSQA)


def tiny_model(records, method_tokens, arch: str = "gpt2", seed: int = 0):
    import torch

    torch.manual_seed(seed)
    model, tokenizer = build_model_and_tokenizer(ModelConfig(arch=arch, preset="tiny", n_positions=512),
                                                 TokenizerConfig(kind="word"), records, method_tokens)
    return model, tokenizer
