"""Coconut's ``method.thought_norm=embedding``: what a thought is rescaled to, that the training pass and
both generation paths feed the rescaled thought (against a by-hand loop in float64), and that a run saves,
reloads and resumes it."""

from __future__ import annotations

import random

import pytest
import torch

from helpers import (MAX_NEW, bias_eos_to_stop_half, hidden_fed_by_hand, sensitive_model, tiny_config, tiny_model,
                     tiny_prosqa)
from latentcot.config import ConfigError, MethodConfig
from latentcot.inference import generate, generate_naive
from latentcot.methods import build_method, method_class, tokenize_record
from latentcot.models import load_checkpoint_model
from latentcot.models.projection import (ThoughtNorm, attach_latent_projection, attach_thought_norm, feedback,
                                         thought_norm)
from latentcot.runs import list_checkpoints
from latentcot.training import Trainer, train
from latentcot.training.export import export_model

TOL = dict(rtol=1e-10, atol=1e-10)


def test_a_thought_keeps_its_direction_and_takes_the_learned_length():
    hidden = torch.randn(3, 5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 7
    out = ThoughtNorm(2.5).double()(hidden)
    assert torch.allclose(out.norm(dim=-1), torch.full((3, 5), 2.5, dtype=torch.float64), **TOL)
    assert torch.allclose(torch.cosine_similarity(out, hidden, dim=-1), torch.ones(3, 5, dtype=torch.float64), **TOL)


def test_the_length_starts_at_the_embedding_rows_mean_length():
    model, _ = tiny_model(tiny_prosqa(3), method_class("coconut").special_tokens)
    attach_thought_norm(model)
    rows = model.get_input_embeddings().weight.detach()
    expected = sum(float(row.norm()) for row in rows) / len(rows)
    assert thought_norm(model).length.item() == pytest.approx(expected, rel=1e-9)
    assert feedback(model) is thought_norm(model)


def test_with_a_projection_the_norm_comes_after_it():
    model, _ = tiny_model(tiny_prosqa(3), method_class("codi").special_tokens)
    projection = attach_latent_projection(model)
    attach_thought_norm(model)
    with torch.no_grad():
        thought_norm(model).length.fill_(2.0)
    hidden = torch.randn(2, 3, model.config.hidden_size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    projected = projection(hidden)
    expected = projected * 2.0 / projected.norm(dim=-1, keepdim=True)
    assert torch.allclose(feedback(model)(hidden), expected, **TOL)


def coconut_with_norm(records, arch="gpt2", **cfg):
    cfg = MethodConfig(name="coconut", c_thought=1, max_latent_stage=3, thought_norm="embedding", **cfg)
    model, tokenizer, method = sensitive_model(records, cfg, arch)
    method.prepare_model(model)
    with torch.no_grad():  # a length far from the init's, so that a path skipping the norm shows
        thought_norm(model).length.fill_(3.7)
    return model, tokenizer, method


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_training_pass_feeds_the_rescaled_thoughts(arch):
    records = tiny_prosqa(4, seed=2)
    model, tokenizer, method = coconut_with_norm(records, arch)
    examples = [method.train_example(tokenize_record(r, tokenizer), 2, random.Random(0)) for r in records]
    batch = method.collate(examples, tokenizer.pad_token_id)
    got = method.forward_hidden(model, batch["input_ids"], batch["attention_mask"], batch["thought_mask"]).hidden
    for row, example in enumerate(examples):
        expected = hidden_fed_by_hand(model, example, lambda last: last * 3.7 / last.norm(dim=-1, keepdim=True))
        real = batch["attention_mask"][row].bool()
        assert torch.allclose(got[row, real], expected, **TOL)


def test_cached_generation_matches_the_uncached_reference_with_the_norm():
    records = tiny_prosqa(6, seed=3)
    model, tokenizer, method = coconut_with_norm(records)
    bias_eos_to_stop_half(model, tokenizer, method, records)
    naive = generate_naive(model, tokenizer, method, records, max_new_tokens=MAX_NEW)
    got = generate(model, tokenizer, method, records, batch_size=4, max_new_tokens=MAX_NEW)
    assert [g.token_ids for g in got] == [g.token_ids for g in naive]
    # and the norm matters: without it the same model writes something else
    delattr(model, "thought_norm")
    plain = generate_naive(model, tokenizer, method, records, max_new_tokens=MAX_NEW)
    assert [g.token_ids for g in plain] != [g.token_ids for g in naive]


def test_a_run_saves_reloads_and_resumes_its_thought_norm(tmp_path):
    records = tiny_prosqa(8)
    cfg = tiny_config(tmp_path, "train.epochs=2", "method.thought_norm=embedding")
    trainer = train(cfg, train_records=records)
    learned = thought_norm(trainer.model).length.item()
    checkpoint = list_checkpoints(tmp_path / "run")[-1]
    model, _ = load_checkpoint_model(checkpoint)
    assert thought_norm(model) is not None and thought_norm(model).length.item() == learned
    resumed = train(tiny_config(tmp_path, "train.epochs=3", "method.thought_norm=embedding"), train_records=records)
    assert thought_norm(resumed.model) is not None and resumed.state.history[-1]["epoch"] == 3
    with pytest.raises(ValueError, match="method.thought_norm"):
        Trainer(tiny_config(tmp_path, "train.epochs=4"), train_records=records)
    # an export carries it, and what it generates is what the trained model generates
    out = export_model(tmp_path / "run", tmp_path / "exported")
    exported, tokenizer = load_checkpoint_model(out)
    assert thought_norm(exported).length.item() == thought_norm(resumed.model).length.item()
    method = build_method(resumed.cfg.method, tokenizer)
    expected = generate(resumed.model, resumed.tokenizer, method, records[:4], max_new_tokens=8)
    assert [g.token_ids for g in generate(exported, tokenizer, method, records[:4], max_new_tokens=8)] == \
        [g.token_ids for g in expected]


def test_a_method_without_continuous_thoughts_refuses_it(tmp_path):
    # refused when the config is read, before a model is built
    with pytest.raises(ConfigError, match="config key 'method.thought_norm' is a coconut, coconut_wo_curriculum, codi "
                                          "or pccot key; this run's method is coconut_pause_as_thought"):
        tiny_config(tmp_path, "method.name=coconut_pause_as_thought", "method.thought_norm=embedding")
