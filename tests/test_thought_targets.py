"""``method.thought_targets``: each continuous thought gets a target set (ProsQA: the nodes within k hops of
the root; ProntoQA: the concept at hop k), trained by soft cross entropy of the LM head at the position that
feeds it; ``thought_feedback=target_mixture`` teacher-forces the thoughts with their sets' mean embeddings.
Checked against by-hand computations in float64."""

from __future__ import annotations

import random

import pytest
import torch

from helpers import tiny_config, tiny_model, tiny_prosqa
from latentcot.config import MethodConfig
from latentcot.data.encodings import build_encoding, parse_graph_question
from latentcot.data.records import Record
from latentcot.data.targets import reachable_sets, thought_target_texts
from latentcot.evaluation import thought_target_exactness
from latentcot.methods import build_method, method_class, tokenize_records
from latentcot.models.continuous import teacher_forced_forward
from latentcot.training import Trainer, train

TOL = dict(rtol=1e-10, atol=1e-10)


def test_reachable_sets_grow_a_hop_at_a_time_and_keep_the_root():
    edges = [(0, 1), (0, 2), (1, 3), (3, 4), (2, 3), (5, 0)]
    assert reachable_sets(edges, 0, 4) == [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert reachable_sets(edges, 4, 2) == [[4], [4]]


def test_reachable_sets_hold_the_target_by_its_depth_and_never_the_other_option():
    encoding = build_encoding("graph")
    for record in encoding.encode_all(tiny_prosqa(20, seed=4)):
        edges, _, root = parse_graph_question(record.question)
        sets = reachable_sets(edges, root, 6)
        target, other = record.extra["target"], record.extra["neg_target"]
        assert target in sets[len(record.steps) - 1]
        assert all(other not in s for s in sets)


def test_chain_targets_are_the_concept_each_rule_hop_reaches():
    from latentcot.data.generators import generate

    record = build_encoding("rules").encode_all(generate("prontoqa", 1, 0, hops=3))[0]
    texts = thought_target_texts(record, "chain", 5)
    hops = [s for s in record.steps if len(s.split()) == 2]
    assert [t for t in texts if t] == [[" " + s.split()[1]] for s in hops]
    assert texts[len(hops):] == [[]] * (5 - len(hops))


def graph_records(n=6, seed=0, hops=3):
    encoded = build_encoding("graph").encode_all(tiny_prosqa(n, seed=seed))
    return [Record(r.question, r.steps, r.answer, dict(r.extra, thought_targets=thought_target_texts(r, "reachable", hops)))
            for r in encoded]


def method_and_model(name="coconut_wo_curriculum", records=None, **cfg):
    cfg = MethodConfig(name=name, c_thought=1, max_latent_stage=3, pad_latent_to_max=True,
                       thought_targets="reachable", **cfg)
    records = records or graph_records()
    model, tokenizer = tiny_model(records, method_class(name).special_tokens)
    method = build_method(cfg, tokenizer)
    method.prepare_model(model)
    return model, tokenizer, method, tokenize_records(records, tokenizer)


def loss_by_hand(model, example):
    """Re-run the whole prefix for each thought (each fed the previous position's final hidden state), then
    -mean log p over each thought's set at the position that feeds it."""
    embeds = model.get_input_embeddings()(torch.tensor([example.input_ids]))
    total = torch.zeros((), dtype=torch.float64)
    for j in range(example.n_thoughts):
        col = example.thought_start + j
        last = model(inputs_embeds=embeds[:, :col], output_hidden_states=True).hidden_states[-1][:, -1:]
        log_p = torch.log_softmax(model.lm_head(last)[0, 0], -1)
        total = total - log_p[example.thought_targets[j]].mean()
        embeds = torch.cat([embeds[:, :col], last, embeds[:, col + 1:]], dim=1)
    return total


def test_the_thought_target_loss_matches_a_by_hand_free_running_pass():
    model, tokenizer, method, tokens = method_and_model()
    examples = [method.train_example(t, 0, random.Random(0)) for t in tokens]
    assert all(e.n_thoughts == 3 and len(e.thought_targets) == 3 for e in examples)
    assert all(e.loss_counts["thought_target"] == 3 and not e.teacher_forced for e in examples)
    batch = method.collate(examples, tokenizer.pad_token_id)
    got = method.batch_loss(model, batch).terms["thought_target"]
    want = sum(loss_by_hand(model, e) for e in examples)
    assert torch.allclose(got, want, **TOL)
    assert method.loss_weights()["thought_target"] == 1.0


def test_teacher_forcing_feeds_each_thought_the_mean_embedding_of_its_set_in_one_pass():
    model, tokenizer, method, tokens = method_and_model(thought_feedback="target_mixture", teacher_forcing_epochs=2)
    examples = [method.train_example(t, 0, random.Random(0)) for t in tokens]
    assert all(e.teacher_forced for e in examples)
    assert not any(method.train_example(t, 2, random.Random(0)).teacher_forced for t in tokens)
    batch = method.collate(examples, tokenizer.pad_token_id)
    got = teacher_forced_forward(model, batch["input_ids"], batch["attention_mask"], batch["thought_mask"],
                                 batch["thought_targets"]).hidden
    table = model.get_input_embeddings().weight
    for row, example in enumerate(examples):
        embeds = table[torch.tensor(example.input_ids)].clone()
        for j, ids in enumerate(example.thought_targets):
            embeds[example.thought_start + j] = table[ids].mean(0)
        want = model(inputs_embeds=embeds[None], output_hidden_states=True).hidden_states[-1][0]
        mask = batch["attention_mask"][row].bool()
        assert torch.allclose(got[row][mask], want, **TOL)
    # and the term is then the loss of that pass: the training pass uses it
    parts = method.batch_loss(model, batch)
    free = method.collate([method.train_example(t, 2, random.Random(0)) for t in tokens], tokenizer.pad_token_id)
    assert not torch.allclose(parts.terms["thought_target"], method.batch_loss(model, free).terms["thought_target"])
    # the model remembers its own mixture as its inference feedback
    from latentcot.models.projection import thought_feedback
    assert thought_feedback(model) == "token_mixture"


def first_thought_gradient(model, tokenizer, method, example):
    """The gradient of the last thought's target loss at layer 0's output in the first thought's column."""
    batch = method.collate([example], tokenizer.pad_token_id)
    seen = []

    def remember(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden.retain_grad()
        seen.append(hidden)

    handle = model.transformer.h[0].register_forward_hook(remember)
    method.batch_loss(model, batch).terms["thought_target"].backward()
    handle.remove()
    model.zero_grad()
    return seen[1].grad  # the pass runs the prefix, then one column per thought


def test_free_running_the_thought_target_gradient_flows_back_through_the_fed_back_thoughts(monkeypatch):
    from dataclasses import replace

    from latentcot.models import continuous

    model, tokenizer, method, tokens = method_and_model()
    example = method.train_example(tokens[0], 0, random.Random(0))
    example = replace(example, thought_targets=[[] for _ in example.thought_targets[:-1]] + [example.thought_targets[-1]])
    through_chain = first_thought_gradient(model, tokenizer, method, example)
    monkeypatch.setattr(continuous, "feedback", lambda m: (lambda hidden: hidden.detach()))
    attention_only = first_thought_gradient(model, tokenizer, method, example)
    assert through_chain.abs().sum() > 0 and attention_only.abs().sum() > 0
    assert not torch.allclose(through_chain, attention_only, **TOL)


@pytest.mark.parametrize("name", ["codi", "pccot"])
def test_codi_and_pccot_train_thought_targets_on_their_latents(name):
    # without the projection and with as many Jacobi updates as latents, both compute Coconut's latents,
    # so the term is the by-hand free-running one
    model, tokenizer, method, tokens = method_and_model(name, latents=3, jacobi_iterations=3, projection=False)
    examples = [method.train_example(t, 0, random.Random(0)) for t in tokens]
    assert all(len(e.thought_targets) == 3 and e.loss_counts["thought_target"] == 3 for e in examples)
    parts = method.batch_loss(model, method.collate(examples, tokenizer.pad_token_id))
    assert {"thought_target", "teacher", "distill"} <= set(parts.terms)
    want = sum(loss_by_hand(model, e) for e in examples)
    assert torch.allclose(parts.terms["thought_target"], want, **TOL)


def test_set_exactness_counts_a_thought_whose_top_tokens_are_exactly_its_set():
    records = graph_records(5, seed=2)
    model, tokenizer, method, tokens = method_and_model(records=records)
    words = tiny_prosqa(5, seed=2)
    got = thought_target_exactness(model, tokenizer, method, words, build_encoding("graph"), "reachable")
    # by hand: the free-running prefix recomputed for every thought
    right = [0, 0, 0]
    for record in tokens:
        example = method.prompt(record)
        embeds = model.get_input_embeddings()(torch.tensor([example.input_ids]))
        for j in range(3):
            col = example.thought_start + j
            last = model(inputs_embeds=embeds[:, :col], output_hidden_states=True).hidden_states[-1][:, -1:]
            want = set(record.thought_targets[j])
            right[j] += set(model.lm_head(last)[0, 0].topk(len(want)).indices.tolist()) == want
            embeds = torch.cat([embeds[:, :col], last, embeds[:, col + 1:]], dim=1)
    assert got == {f"thought{j + 1}_set_exact": right[j] / 5 for j in range(3)}
    # a head biased to rank R_1, then R_2, then R_3 first scores 1 at every thought; a bias to R_3 alone,
    # only at the thought whose set it is
    record = tokens[0]
    for layers, want in (((0, 1, 2), [1.0, 1.0, 1.0]), ((2,), [0.0, 0.0, 1.0])):
        head = model.lm_head
        biased = torch.nn.Linear(head.in_features, head.out_features, bias=True, dtype=head.weight.dtype)
        with torch.no_grad():
            biased.weight.copy_(head.weight)
            biased.bias.zero_()
            for k in layers:
                biased.bias[list(record.thought_targets[k])] += 100.0
        model.set_output_embeddings(biased)
        got = thought_target_exactness(model, tokenizer, method, words[:1], build_encoding("graph"), "reachable")
        assert list(got.values()) == want


def test_configs_that_cannot_have_thought_targets_are_refused(tmp_path):
    records = tiny_prosqa(8)
    with pytest.raises(ValueError, match="method.thought_targets.*data.encoding=graph"):
        Trainer(tiny_config(tmp_path, "method.thought_targets=reachable"), train_records=records)
    with pytest.raises(ValueError, match="'method.thought_targets' is a coconut, coconut_wo_curriculum, codi or "
                                         "pccot key; this run's method is cot"):
        Trainer(tiny_config(tmp_path, "data.encoding=graph", "method.name=cot", "method.thought_targets=reachable"),
                train_records=records)
    with pytest.raises(ValueError, match="target_mixture.*thought_targets"):
        Trainer(tiny_config(tmp_path, "data.encoding=graph", "method.thought_feedback=target_mixture"),
                train_records=records)


def test_a_run_trains_teacher_forced_then_free_and_logs_set_exactness(tmp_path):
    records = tiny_prosqa(16, seed=5)
    cfg = tiny_config(tmp_path, "data.encoding=graph", "method.name=coconut_wo_curriculum", "method.max_latent_stage=3",
                      "method.pad_latent_to_max=true", "method.thought_targets=reachable",
                      "method.thought_feedback=target_mixture", "method.teacher_forcing_epochs=1", "train.epochs=2",
                      "train.eval_every=1", "method.max_new_tokens=4")
    trainer = train(cfg, train_records=records, valid_records=records[:4])
    assert [trainer.method.teacher_forced_at(e) for e in range(2)] == [True, False]
    history = trainer.state.history
    assert all({"thought1_set_exact", "thought3_set_exact"} <= set(h) for h in history)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert any('"thought_target_loss"' in line for line in lines)
