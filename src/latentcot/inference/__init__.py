"""Inference: batched greedy generation with continuous thoughts and the KV cache, and its CLI."""

from .generate import Generation, generate, generate_naive

__all__ = ["Generation", "generate", "generate_naive"]
