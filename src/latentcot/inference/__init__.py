"""Inference: batched greedy generation with continuous thoughts and the KV cache, and its CLI."""

from .generate import Generation, generate, generate_naive
from .loading import load_run

__all__ = ["Generation", "generate", "generate_naive", "load_run"]
