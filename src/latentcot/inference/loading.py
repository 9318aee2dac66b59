"""A saved run (a checkpoint directory, or a run directory's newest checkpoint) loaded for inference."""

from __future__ import annotations

from pathlib import Path


def load_run(run_dir: str | Path):
    """Config, model, tokenizer and method of a checkpoint directory, or of a run's newest checkpoint."""
    from ..config import load_config
    from ..methods import build_method
    from ..models import load_checkpoint_model
    from ..runs import resolve_run

    directory = resolve_run(run_dir)
    config_path = directory / "config.yaml"
    if not config_path.exists():
        raise FileNotFoundError(f"{directory}: no config.yaml (is this a saved run directory?)")
    cfg = load_config(config_path)
    if cfg.method.vqvae and (directory / cfg.method.vqvae).exists():
        # an exported model carries its VQ-VAE inside, named relative to itself (latentcot export)
        cfg.method.vqvae = str(directory / cfg.method.vqvae)
    model, tokenizer = load_checkpoint_model(directory, cfg.model.dtype)
    return cfg, model, tokenizer, build_method(cfg.method, tokenizer)
