"""A trained VQ-VAE as files: building one for a tokenizer, saving, loading, and reading codes back as text.

Token Assorted (``methods/assorted.py``) needs these to load the VQ-VAE it trains with; they import
nothing of the trainers, so a method can load a VQ-VAE without the training code importing it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from ..config import save_config
from ..data.io import atomic_directory
from ..data.records import Record
from ..errors import CheckpointError, ConfigError, MissingFileError, UserError, is_load_failure
from ..runs import STATE_FILE, latest_checkpoint
from ..runtime import rng_state
from ..tokenization import METHOD_TOKENS, add_method_tokens, build_tokenizer, load_tokenizer, tokenize_record
from .config import VQVAEConfig, VQVAEModelConfig
from .model import VQVAE, chunk_examples, collate_chunks

MODEL_FILE = "model.safetensors"
HPARAMS_FILE = "vqvae.json"


# --------------------------------------------------------------------------- building


def vqvae_tokenizer(cfg: VQVAEConfig, records: Sequence[Record]):
    """The LM's tokenizer for the same settings: same kind, same training file, same method tokens, so the
    VQ-VAE's token ids are the LM's; or the saved one at ``tokenizer.path`` (an LM run directory works)."""
    t = cfg.tokenizer
    if t.path:
        tokenizer = build_tokenizer(t.kind, path=t.path)
    elif t.kind == "pretrained":
        raise ConfigError("the VQ-VAE cannot take a model's tokenizer by itself: set tokenizer.kind to word or "
                          "bpe, or tokenizer.path to a saved tokenizer or an LM run directory", "tokenizer.kind")
    else:
        if not records:
            raise ConfigError("training a tokenizer needs data: set data.train or tokenizer.path", "data.train")
        tokenizer = build_tokenizer(t.kind, records, vocab_size=t.vocab_size, min_frequency=t.min_frequency)
    add_method_tokens(tokenizer, METHOD_TOKENS)
    return tokenizer


def build_vqvae(model_cfg: VQVAEModelConfig, tokenizer, batch_size: int) -> VQVAE:
    """A fresh VQ-VAE for a tokenizer; ``batch_size`` scales the dead-code threshold (see the config)."""
    m = model_cfg
    uniform_use = batch_size * m.codes_per_chunk / m.codebook_size
    return VQVAE(
        len(tokenizer), tokenizer.pad_token_id, chunk_len=m.chunk_len, codes_per_chunk=m.codes_per_chunk,
        codebook_size=m.codebook_size, codebook_dim=m.codebook_dim, d_model=m.d_model, n_layers=m.n_layers,
        n_heads=m.n_heads, dropout=m.dropout, max_question_len=m.max_question_len,
        commitment_weight=m.commitment_weight, ema_decay=m.ema_decay, kmeans_init=m.kmeans_init,
        threshold_ema_dead_code=m.dead_code_threshold * uniform_use, rotation_trick=m.rotation_trick,
        predict_padding=m.predict_padding)


# --------------------------------------------------------------------------- saving and loading


def save_vqvae(directory: str | Path, model: VQVAE, tokenizer, cfg: VQVAEConfig | None = None, *,
               optimizer_state: dict | None = None, state: dict[str, Any] | None = None) -> Path:
    """Weights, hyperparameters and tokenizer (plus config, optimizer, RNG and ``state.json`` for a training
    checkpoint) in one directory, swapped in whole."""
    from safetensors.torch import save_model

    target = Path(directory)
    with atomic_directory(target) as tmp:
        # save_model (not save_file) because the output layer shares the token embedding's weight.
        save_model(model, str(tmp / MODEL_FILE))
        (tmp / HPARAMS_FILE).write_text(json.dumps(model.hparams, indent=2))
        tokenizer.save_pretrained(tmp)
        if cfg is not None:
            save_config(cfg, tmp / "config.yaml")
        if optimizer_state is not None:
            torch.save(optimizer_state, tmp / "optimizer.pt")
        if state is not None:
            torch.save(rng_state(), tmp / "rng.pt")
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
    return target


def resolve_vqvae(path: str | Path) -> Path:
    """A saved VQ-VAE directory, or the newest checkpoint of a VQ-VAE run directory."""
    path = Path(path)
    if (path / HPARAMS_FILE).exists():
        return path
    latest = latest_checkpoint(path)
    if latest is None or not (latest / HPARAMS_FILE).exists():
        raise MissingFileError(f"{path}: neither a saved VQ-VAE (no {HPARAMS_FILE}) nor a VQ-VAE run with checkpoints")
    return latest


def vqvae_encoding(path: str | Path) -> str:
    """The ``data.encoding`` a saved VQ-VAE's traces were written in (``text`` for one saved without a
    config, as before encodings existed)."""
    from .config import load_vqvae_config

    config = resolve_vqvae(path) / "config.yaml"
    return load_vqvae_config(config).data.encoding if config.exists() else "text"


def load_vqvae(path: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, tokenizer) from a saved VQ-VAE or a run directory's newest checkpoint."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    directory = resolve_vqvae(path)
    try:
        model = VQVAE(**json.loads((directory / HPARAMS_FILE).read_text()))
        load_model(model, str(directory / MODEL_FILE), device=str(device))
        tokenizer = load_tokenizer(str(directory))
    except UserError:
        raise
    except Exception as err:
        if not (is_load_failure(err) or isinstance(err, SafetensorError)):
            raise
        first_line = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise CheckpointError(f"{directory}: the VQ-VAE does not load: {first_line}") from err
    return model.to(device).eval(), tokenizer


@torch.no_grad()
def decode_codes_to_text(model: VQVAE, tokenizer, codes: Sequence[int], question: str) -> str:
    """The text the decoder reads into a run of latent codes (``codes_per_chunk`` codes per chunk).

    Unless the model was trained with ``predict_padding``, the last chunk of a trace decodes to a full
    ``chunk_len`` tokens: the tail past the trace's real end is whatever the decoder guesses.
    """
    n = model.codes_per_chunk
    if len(codes) % n:
        raise ValueError(f"{len(codes)} codes do not split into chunks of {n} codes")
    if not codes:
        return ""
    was_training = model.training
    model.eval()
    question_ids = tokenize_record(Record(question, [], "-"), tokenizer).question[-model.max_question_len:]
    chunks = len(codes) // n
    q = torch.tensor([question_ids] * chunks, dtype=torch.long, device=model.device)
    logits = model.decode(torch.tensor(list(codes), dtype=torch.long, device=model.device).view(chunks, n),
                          q, torch.ones_like(q, dtype=torch.bool))
    model.train(was_training)
    return tokenizer.decode(logits.argmax(-1).flatten().tolist(), skip_special_tokens=True)


def encode_record(model: VQVAE, tokenizer, record: Record) -> list[int]:
    """The codes of a problem's whole trace, chunk after chunk."""
    examples = chunk_examples([tokenize_record(record, tokenizer)], model.chunk_len)
    if not examples:
        return []
    tensors = {k: v.to(model.device)
               for k, v in collate_chunks(examples, model.pad_id, model.chunk_len, model.max_question_len).items()}
    return model.encode(**tensors).flatten().tolist()
