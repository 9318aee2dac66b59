"""The VQ-VAE's config: its own dataclass tree, loaded with the same YAML + dotted-override machinery as
the language model's (:mod:`latentcot.config`).

The ``data`` and ``tokenizer`` sections are the LM config's own, so the same settings on the same
training file give the same vocabulary, and the codes' chunks are cut from the ids the LM sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import ConfigError, DataConfig, TokenizerConfig, load_config, option


@dataclass
class VQVAEModelConfig:
    chunk_len: int = option(16, "L: reasoning-trace tokens per chunk (the last chunk of a trace is padded)")
    codes_per_chunk: int = option(1, "L/r in the paper: latent codes per chunk (1 = one code per L tokens)")
    codebook_size: int = option(64, "K: codebook entries (64 suits the synthetic tasks, 1024 math)")
    codebook_dim: int = option(0, "dimension the codes live in, projected from/to d_model (0 = d_model)")
    d_model: int = option(128, "width of the encoder and decoder transformers")
    n_layers: int = option(2, "transformer layers, each of the encoder and of the decoder")
    n_heads: int = option(4, "attention heads")
    dropout: float = option(0.0, "dropout inside the transformers")
    max_question_len: int = option(512, "question tokens kept as context; longer questions lose their start")
    commitment_weight: float = option(0.25, "weight of the commitment loss pulling encoder outputs to their code")
    ema_decay: float = option(0.99, "codebook moving-average decay (the codebook learns by EMA, not by gradient)")
    kmeans_init: bool = option(True, "initialise the codebook by k-means on the first training batch's encoder "
                               "outputs (a codebook larger than the batch starts with duplicates, re-seeded later)")
    dead_code_threshold: float = option(
        0.5, "re-seed a code from the current batch when its moving-average use falls below this fraction of "
        "a uniform code's use (batch_size * codes_per_chunk / codebook_size per step); 0 = never. Relative, "
        "because the quantizer's absolute count means nothing without the batch and codebook sizes")
    rotation_trick: bool = option(False, "pass gradients through the quantizer with the rotation trick "
                                  "(Fifty et al. 2024) instead of the straight-through estimator")
    predict_padding: bool = option(False, "also train the decoder to predict <pad> after a trace's end, so "
                                   "decoded text stops there; costs code capacity on each trace's last chunk")


@dataclass
class VQVAETrainConfig:
    lr: float = option(1e-3, "AdamW learning rate")
    weight_decay: float = option(0.0, "AdamW weight decay")
    batch_size: int = option(64, "chunks per optimizer step")
    epochs: int = option(20, "passes over the training chunks")
    grad_clip: float = option(1.0, "max gradient norm (0 = off)")
    lr_schedule: Literal["constant", "cosine"] = option("constant", "constant, or cosine decay to 10% over the run")
    warmup_steps: int = option(0, "linear learning-rate warm-up steps")
    eval_every: int = option(1, "evaluate on data.valid every N epochs (0 = never)")
    eval_batch_size: int = option(256, "chunks per forward pass during evaluation")
    keep_checkpoints: int = option(0, "keep only the newest N epoch checkpoints (0 = all)")
    log_every: int = option(10, "write a training metrics line every N optimizer steps")
    resume: bool = option(True, "continue from the newest checkpoint in output_dir if there is one")
    device: str = option("auto", "auto (cuda if available), cpu, cuda, cuda:1, ...")
    progress: bool = option(True, "show progress bars")


@dataclass
class VQVAEConfig:
    seed: int = option(0, "seed for python, torch and data shuffling")
    output_dir: str = option("runs/vqvae", "where checkpoints, tokenizer and metrics go")
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: VQVAEModelConfig = field(default_factory=VQVAEModelConfig)
    train: VQVAETrainConfig = field(default_factory=VQVAETrainConfig)


def load_vqvae_config(path: str | Path | None = None, overrides: list[str] | None = None) -> VQVAEConfig:
    """Defaults, then the YAML file (if any), then ``section.key=value`` overrides."""
    cfg = load_config(path, overrides, cls=VQVAEConfig)
    validate(cfg)
    return cfg


def validate(cfg: VQVAEConfig) -> None:
    """Values that type-check but cannot work, named by key."""
    m, t = cfg.model, cfg.train
    positive = {"model.chunk_len": m.chunk_len, "model.codes_per_chunk": m.codes_per_chunk,
                "model.codebook_size": m.codebook_size, "model.d_model": m.d_model, "model.n_layers": m.n_layers,
                "model.n_heads": m.n_heads, "model.max_question_len": m.max_question_len,
                "train.batch_size": t.batch_size, "train.eval_batch_size": t.eval_batch_size}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key '{key}': must be at least 1, got {value}")
    if m.chunk_len % m.codes_per_chunk:
        raise ConfigError(f"config key 'model.codes_per_chunk': {m.codes_per_chunk} does not divide "
                          f"model.chunk_len={m.chunk_len}")
    if m.d_model % m.n_heads:
        raise ConfigError(f"config key 'model.n_heads': {m.n_heads} does not divide model.d_model={m.d_model}")
    if not 0.0 <= m.ema_decay < 1.0:
        raise ConfigError(f"config key 'model.ema_decay': must be in [0, 1), got {m.ema_decay}")
    if m.codebook_dim < 0 or m.dead_code_threshold < 0:
        raise ConfigError("config keys 'model.codebook_dim' and 'model.dead_code_threshold' must not be negative")
