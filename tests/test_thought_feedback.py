"""``method.thought_feedback=token_mixture``: a fed-back thought is the input embeddings averaged under the
LM head's next-token distribution. Checked against by-hand computations in float64: the mixture itself, the
training pass and both generation paths; and that a run saves, reloads, resumes and exports the setting."""

from __future__ import annotations

import json
import random

import pytest
import torch

from helpers import (MAX_NEW, bias_eos_to_stop_half, hidden_fed_by_hand, sensitive_model, tiny_config, tiny_model,
                     tiny_prosqa)
from latentcot.config import ConfigError, MethodConfig
from latentcot.inference import generate, generate_naive
from latentcot.methods import build_method, method_class, tokenize_record
from latentcot.models import load_checkpoint_model
from latentcot.models.projection import attach_thought_norm, feedback, thought_feedback, thought_norm
from latentcot.runs import list_checkpoints
from latentcot.training import Trainer, train
from latentcot.training.export import export_model

TOL = dict(rtol=1e-10, atol=1e-10)


def mixture_by_hand(model, hidden):
    head = model.get_output_embeddings()
    logits = hidden @ head.weight.T + (head.bias if head.bias is not None else 0)
    return torch.softmax(logits, dim=-1) @ model.get_input_embeddings().weight


def coconut_with_mixture(records, arch="gpt2", **cfg):
    cfg = MethodConfig(name="coconut", c_thought=1, max_latent_stage=3, thought_feedback="token_mixture", **cfg)
    model, tokenizer, method = sensitive_model(records, cfg, arch)
    method.prepare_model(model)
    return model, tokenizer, method


def test_a_thought_is_the_embeddings_averaged_under_the_heads_distribution():
    model, _, _ = coconut_with_mixture(tiny_prosqa(3))
    hidden = torch.randn(2, 3, model.config.hidden_size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = feedback(model)(hidden)
    assert torch.allclose(got, mixture_by_hand(model, hidden), **TOL)
    # a position sure of one token feeds back that token's embedding
    table = model.get_input_embeddings().weight
    sure = model.get_output_embeddings().weight[7] * 1e3
    assert torch.allclose(feedback(model)(sure[None]), table[7][None], atol=1e-8)


def test_with_a_thought_norm_the_norm_rescales_the_mixture():
    model, _, _ = coconut_with_mixture(tiny_prosqa(3))
    attach_thought_norm(model)
    with torch.no_grad():
        thought_norm(model).length.fill_(2.0)
    hidden = torch.randn(2, 3, model.config.hidden_size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mixed = mixture_by_hand(model, hidden)
    assert torch.allclose(feedback(model)(hidden), mixed * 2.0 / mixed.norm(dim=-1, keepdim=True), **TOL)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_training_pass_feeds_the_mixtures(arch):
    records = tiny_prosqa(4, seed=2)
    model, tokenizer, method = coconut_with_mixture(records, arch)
    examples = [method.train_example(tokenize_record(r, tokenizer), 2, random.Random(0)) for r in records]
    batch = method.collate(examples, tokenizer.pad_token_id)
    got = method.forward_hidden(model, batch["input_ids"], batch["attention_mask"], batch["thought_mask"]).hidden
    for row, example in enumerate(examples):
        expected = hidden_fed_by_hand(model, example, lambda last: mixture_by_hand(model, last))
        real = batch["attention_mask"][row].bool()
        assert torch.allclose(got[row, real], expected, **TOL)


def test_cached_generation_matches_the_uncached_reference_with_the_mixture():
    records = tiny_prosqa(6, seed=3)
    model, tokenizer, method = coconut_with_mixture(records)
    bias_eos_to_stop_half(model, tokenizer, method, records)
    naive = generate_naive(model, tokenizer, method, records, max_new_tokens=MAX_NEW)
    got = generate(model, tokenizer, method, records, batch_size=4, max_new_tokens=MAX_NEW)
    assert [g.token_ids for g in got] == [g.token_ids for g in naive]
    # and the mixture matters: fed the hidden state, the same model writes something else
    del model.config.latentcot_thought_feedback
    plain = generate_naive(model, tokenizer, method, records, max_new_tokens=MAX_NEW)
    assert [g.token_ids for g in plain] != [g.token_ids for g in naive]


def test_a_run_saves_reloads_resumes_and_exports_its_thought_feedback(tmp_path):
    records = tiny_prosqa(8)
    setting = "method.thought_feedback=token_mixture"
    trainer = train(tiny_config(tmp_path, "train.epochs=2", setting), train_records=records)
    assert thought_feedback(trainer.model) == "token_mixture"
    model, _ = load_checkpoint_model(list_checkpoints(tmp_path / "run")[-1])
    assert thought_feedback(model) == "token_mixture"
    resumed = train(tiny_config(tmp_path, "train.epochs=3", setting), train_records=records)
    assert thought_feedback(resumed.model) == "token_mixture" and resumed.state.history[-1]["epoch"] == 3
    with pytest.raises(ValueError, match="method.thought_feedback"):
        Trainer(tiny_config(tmp_path, "train.epochs=4"), train_records=records)
    out = export_model(tmp_path / "run", tmp_path / "exported")
    exported, tokenizer = load_checkpoint_model(out)
    assert thought_feedback(exported) == "token_mixture"
    method = build_method(resumed.cfg.method, tokenizer)
    expected = generate(resumed.model, resumed.tokenizer, method, records[:4], max_new_tokens=8)
    assert [g.token_ids for g in generate(exported, tokenizer, method, records[:4], max_new_tokens=8)] == \
        [g.token_ids for g in expected]
    # a new run continued from it with the paper's feedback feeds the hidden state again
    continued = train(tiny_config(tmp_path, "train.epochs=1", f"train.init_from={out}", name="continued"),
                      train_records=records)
    assert thought_feedback(continued.model) == "hidden"
    # its export lists the runs behind the model it continued, read from that model's training.json
    again = export_model(tmp_path / "continued", tmp_path / "exported_again")
    runs = [r["run"] for r in json.loads((again / "training.json").read_text())["runs"]]
    assert len(runs) == 2 and runs[1].endswith("run") and runs[0].endswith("continued")


def test_a_method_without_continuous_thoughts_refuses_it(tmp_path):
    # refused when the config is read, before a model is built
    with pytest.raises(ConfigError, match="config key 'method.thought_feedback' is a coconut, coconut_wo_curriculum, codi "
                                          "or pccot key; this run's method is coconut_pause_as_thought"):
        tiny_config(tmp_path, "method.name=coconut_pause_as_thought", "method.thought_feedback=token_mixture")
