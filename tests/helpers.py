"""Tiny models and data that tests build themselves (no network, seconds on CPU)."""

from __future__ import annotations

from latentcot.config import ModelConfig, TokenizerConfig
from latentcot.data.generators import generate
from latentcot.models import build_model_and_tokenizer

SMALL_PROSQA = {"min_nodes": 8, "max_nodes": 10}


def tiny_prosqa(n: int = 16, seed: int = 0):
    return generate("prosqa", n, seed, **SMALL_PROSQA)


def tiny_model(records, method_tokens, arch: str = "gpt2", seed: int = 0, dtype: str = "float64"):
    """A tiny random model, float64 by default: the tests compare two computations of the same thing
    (cached against recomputed, batched against one row), and float32 rounding, which depends on the
    machine's thread count and vector width, can flip a near-tie argmax or move a gradient past a
    tolerance. In float64 the difference is about 1e-16, far below any margin a test relies on."""
    import torch

    torch.manual_seed(seed)
    model, tokenizer = build_model_and_tokenizer(ModelConfig(arch=arch, preset="tiny", n_positions=512, dtype=dtype),
                                                 TokenizerConfig(kind="word"), records, method_tokens)
    if dtype == "float64":
        keep_rms_norms_in_float64(model)
    return model, tokenizer


def keep_rms_norms_in_float64(model) -> None:
    """transformers' RMSNorm (Llama) computes in float32 whatever the input's dtype, which would put
    float32 rounding (1e-7) back into a float64 comparison: compute it in the input's dtype instead."""
    import types

    import torch

    def forward(self, hidden):
        variance = hidden.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden * torch.rsqrt(variance + self.variance_epsilon))

    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(forward, module)
