"""Model factory: GPT-2/Llama from a size preset, any HuggingFace causal LM, or offline SmolLM2."""

from .factory import (
    PRESETS,
    SMOLLM2_GGUF,
    ModelPreset,
    build_model_and_tokenizer,
    count_parameters,
    load_checkpoint_model,
    model_from_preset,
    resize_for_tokenizer,
    save_model,
    smollm2_gguf_path,
)

__all__ = [
    "PRESETS", "SMOLLM2_GGUF", "ModelPreset", "build_model_and_tokenizer", "count_parameters",
    "load_checkpoint_model", "model_from_preset", "resize_for_tokenizer", "save_model", "smollm2_gguf_path",
]
