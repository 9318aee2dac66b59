"""A saved run (a checkpoint directory, or a run directory's newest checkpoint) loaded for inference."""

from __future__ import annotations

from pathlib import Path


def load_run(run_dir: str | Path):
    """Config, model, tokenizer and method of a checkpoint directory, or of a run's newest checkpoint.

    The config is the one the run saved, as it saved it (:func:`~latentcot.config.load_run_config`); paths
    in it relative to the directory (an export's bundled VQ-VAE) are resolved by the method."""
    from ..config import load_run_config
    from ..errors import MissingFileError
    from ..methods import build_method
    from ..models import load_checkpoint_model
    from ..runs import resolve_run

    directory = resolve_run(run_dir)
    config_path = directory / "config.yaml"
    if not config_path.exists():
        raise MissingFileError(f"{directory}: no config.yaml (is this a saved run directory?)")
    cfg = load_run_config(config_path)
    model, tokenizer = load_checkpoint_model(directory, cfg.model.dtype)
    return cfg, model, tokenizer, build_method(cfg.method, tokenizer, run_dir=directory)
