"""Zhu et al.'s ProsQA recipe as options: per-epoch re-shuffled edges and options, relabelled node ids, the
frontier stage target, AdamW betas. Checked against an independent reading of the compact question."""

import importlib
import importlib.util
import random
from collections import deque

import pytest
import torch

from helpers import tiny_prosqa
from latentcot.data.encodings import augment_graph, build_encoding, frontier_nodes, graph_stage_targets
from latentcot.data.generators import generate

ENC = build_encoding("graph")


def read_compact(question: str):
    """Edges, options and root of a compact question, read without the library's parser."""
    before_q, after_q = question.split(" Q ")
    edges = [tuple(int(x) for x in chunk.split()) for chunk in before_q.split("|") if chunk.strip()]
    options, root = after_q.split(" R ")
    return edges, [int(x) for x in options.split()], int(root)


def reachable(edges, start):
    seen, todo = {start}, deque([start])
    while todo:
        node = todo.popleft()
        for parent, child in edges:
            if parent == node and child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def at_depth(edges, root, depth):
    """Nodes that some path of exactly ``depth`` edges from the root ends at."""
    layer = {root}
    for _ in range(depth):
        layer = {c for p, c in edges if p in layer}
    return layer


def check_problem(record):
    edges, options, root = read_compact(record.question)
    assert len(edges) == len(set(edges)) and all(len(e) == 2 for e in edges)
    reach = reachable(edges, root)
    assert sum(o in reach for o in options) == 1, record.question
    answer = int(record.answer)
    assert answer in options and answer in reach
    node = root
    for step in record.steps:  # the steps walk edges of the graph from the root to the answer
        parent, child = (int(x) for x in step.split())
        assert (parent, child) in edges and parent == node
        node = child
    assert node == answer


@pytest.fixture(scope="module")
def problems(request):
    records = tiny_prosqa(40, seed=11) + generate("prosqa", 40, seed=12)
    return ENC.encode_all(records)


def test_every_rewritten_problem_is_still_one_reachable_option_and_a_path_of_its_edges(problems):
    rng = random.Random(0)
    renamed = reordered = 0
    for record in problems:
        check_problem(record)
        for shuffle, relabel in ((True, False), (False, True), (True, True)):
            new = augment_graph(record, rng, shuffle, relabel)
            check_problem(new)
            renamed += new.answer != record.answer
            reordered += read_compact(new.question)[0] != read_compact(record.question)[0]
            # the same problem in words: the same facts (in another order), options and answer
            words, original = ENC.decode(new), ENC.decode(record)
            facts, ask = words.question.rsplit(". ", 1)
            original_facts, original_ask = original.question.rsplit(". ", 1)
            assert sorted(facts.split(". ")) == sorted(original_facts.split(". "))
            assert sorted(ask.rstrip("?").split()) == sorted(original_ask.rstrip("?").split())
            assert words.answer == original.answer and words.steps == original.steps
    assert renamed > len(problems) and reordered > len(problems)  # the rewriting really rewrites


def test_the_official_valid_problems_survive_rewriting(shared_data):
    from latentcot.data.io import load_records

    rng = random.Random(1)
    for record in ENC.encode_all(load_records(shared_data / "prosqa_valid.json")):
        check_problem(augment_graph(record, rng, True, True))


def test_stage_k_targets_are_the_nodes_at_depth_k_plus_1_on_a_path_to_the_target(problems):
    for record in problems:
        edges, _, root = read_compact(record.question)
        target = int(record.answer)
        targets = graph_stage_targets(record)
        assert len(targets) == len(record.steps) and record.answer in targets[-1]
        for k, candidates in enumerate(targets):
            nodes = {int(c) for c in candidates}
            assert nodes and nodes == {v for v in at_depth(edges, root, k + 1) if target in reachable(edges, v)}
            # the gold path's own node at that depth is always among them
            assert int(record.steps[k].split()[1]) in nodes
    assert frontier_nodes([(0, 1), (0, 2), (1, 3), (2, 4)], 0, 3, 1) == [1]  # 2 leads elsewhere


def test_coconut_with_the_frontier_target_writes_one_node_after_k_thoughts(tmp_path):
    from helpers import tiny_config

    from latentcot.training import Trainer

    cfg = tiny_config(tmp_path, "data.encoding=graph", "method.stage_target=frontier", "method.uniform_prob=0",
                      "method.max_latent_stage=3", "method.epochs_per_stage=1")
    trainer = Trainer(cfg, train_records=tiny_prosqa(12, seed=3))
    tok, method = trainer.tokenizer, trainer.method
    branches = {"node": 0, "answer": 0}
    for epoch in (1, 2):
        for record, tokens in zip(trainer.train_records, trainer.epoch_records(epoch)):
            example = method.train_example(tokens, epoch, random.Random(0))
            labelled = [t for t in example.labels if t != -100]
            stage = method.stage_at(epoch)
            assert example.n_thoughts == method.thoughts_for(stage, len(record.steps))
            text = tok.decode(labelled)
            written = text.split("###")[-1].replace(tok.eos_token, "").strip()
            if stage < len(record.steps):
                assert written in graph_stage_targets(record)[stage] and text.count("\n") == 0  # no steps
                branches["node"] += 1
            else:
                assert written == record.answer
                branches["answer"] += 1
    assert min(branches.values()) > 0, branches


def test_rewritten_epochs_differ_and_repeat_exactly(tmp_path):
    from helpers import tiny_config

    from latentcot.training import Trainer, train

    records = tiny_prosqa(16, seed=5)
    common = ("data.encoding=graph", "data.shuffle_graph=true", "data.relabel_nodes=true", "method.name=cot")
    a = Trainer(tiny_config(tmp_path, *common, name="a"), train_records=records)
    b = Trainer(tiny_config(tmp_path, *common, name="b"), train_records=records)
    assert a.epoch_records(0) != a.epoch_records(1)
    assert a.epoch_records(1) == b.epoch_records(1)  # a function of the seed and the epoch: resumes agree
    run = train(tiny_config(tmp_path, *common, "train.epochs=2", "method.name=coconut",
                            "method.stage_target=frontier", "model.dropout=0.1", "train.adam_betas=[0.9,0.95]",
                            name="run"), train_records=records)
    assert all(h["train_loss"] < 10 for h in run.state.history)
    assert run.optimizer.param_groups[0]["betas"] == (0.9, 0.95)


@pytest.mark.parametrize("overrides,message", [
    (["data.shuffle_graph=true"], "'data.shuffle_graph': needs data.encoding=graph"),
    (["data.relabel_nodes=true"], "'data.relabel_nodes': needs data.encoding=graph"),
    (["method.stage_target=frontier"], "'method.stage_target': needs data.encoding=graph"),
    (["data.encoding=graph", "method.stage_target=frontier", "method.name=cot"],
     "'method.stage_target' is a coconut, coconut_wo_curriculum, coconut_wo_thought or coconut_pause_as_thought key; "
     "this run's method is cot"),
    (["train.adam_betas=[0.9]"], "'train.adam_betas': expected two values in [0, 1)"),
])
def test_recipe_keys_out_of_place_are_one_error(tmp_path, overrides, message):
    from helpers import tiny_config

    from latentcot.training import Trainer

    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Trainer(tiny_config(tmp_path, *overrides), train_records=tiny_prosqa(8))


def test_dropout_reaches_the_model(tmp_path):
    from helpers import tiny_config

    from latentcot.training import Trainer

    trainer = Trainer(tiny_config(tmp_path, "model.dropout=0.1"), train_records=tiny_prosqa(8))
    assert trainer.model.config.resid_pdrop == trainer.model.config.attn_pdrop == 0.1
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.1 for m in trainer.model.modules())


def test_stage_accuracy_counts_a_node_right_only_when_it_is_a_frontier_node_of_that_stage(tmp_path, monkeypatch):
    """The frontier run's eval curve (``stage_accuracy`` in metrics.jsonl): the model's generations are stubbed
    to name, problem by problem, a node the independent reader calls right or wrong at stage k."""
    from helpers import tiny_config

    from latentcot.evaluation import stage_target_accuracy
    from latentcot.inference.generate import Generation
    from latentcot.training import Trainer

    cfg = tiny_config(tmp_path, "data.encoding=graph", "method.stage_target=frontier", "method.max_latent_stage=3")
    words = tiny_prosqa(30, seed=21)
    trainer = Trainer(cfg, train_records=words, valid_records=words)
    stage = 1
    seen_thoughts = []

    def stub(model, tokenizer, method, records, batch_size=32, n_thoughts=None, max_new_tokens=None, progress=False):
        seen_thoughts.append(n_thoughts)
        out = []
        for i, record in enumerate(records):
            edges, _, root = read_compact(record.question)
            right = sorted(v for v in at_depth(edges, root, stage + 1) if int(record.answer) in reachable(edges, v))
            node = right[0] if i % 3 else root  # the root is never k+1 >= 2 edges from itself in a DAG
            out.append(Generation(text=f"### {node}", token_ids=[], n_thoughts=n_thoughts, generated_tokens=2,
                                  forward_passes=2, seconds=0.0))
        return out

    monkeypatch.setattr(importlib.import_module("latentcot.inference.generate"), "generate", stub)
    kept = [r for r in ENC.encode_all(words) if len(r.steps) > stage]
    result = stage_target_accuracy(trainer.model, trainer.tokenizer, trainer.method, words, stage, trainer.encoding)
    assert result["stage_problems"] == len(kept) > 0
    assert result["stage_accuracy"] == pytest.approx(sum(1 for i in range(len(kept)) if i % 3) / len(kept))
    assert seen_thoughts == [stage]  # k thoughts, as the stage trains
    assert stage_target_accuracy(trainer.model, trainer.tokenizer, trainer.method, words, 99,
                                 trainer.encoding) == {"stage_accuracy": None, "stage_problems": 0}


def test_a_frontier_run_logs_its_stage_accuracy_at_each_stage(tmp_path):
    import json

    from helpers import tiny_config

    from latentcot.training import train

    cfg = tiny_config(tmp_path, "data.encoding=graph", "method.stage_target=frontier", "method.max_latent_stage=1",
                      "method.epochs_per_stage=1", "train.epochs=3", "train.eval_every=1")
    words = tiny_prosqa(12, seed=4)
    run = train(cfg, train_records=words, valid_records=words[:6])
    rows = [json.loads(line) for line in open(run.output_dir / "metrics.jsonl")]
    evals = [r for r in rows if r["type"] == "eval"]
    by_stage = {r["stage"]: r for r in evals}
    assert set(by_stage) == {0, 1, 2}
    assert "stage_accuracy" in by_stage[0] and "stage_accuracy" in by_stage[1]
    assert "stage_accuracy" not in by_stage[2]  # after the last latent stage the answer is the target

    from latentcot.analysis.report import plot_training_curves

    assert plot_training_curves({"frontier": rows}, tmp_path / "curves.png") and (tmp_path / "curves.png").stat().st_size

    # scripts/prosqa_width_sweep.py reads exactly these rows into its curve
    from conftest import REPO

    spec = importlib.util.spec_from_file_location("prosqa_width_sweep", REPO / "scripts" / "prosqa_width_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    curve = sweep.curve(run.output_dir)
    assert curve["stage_accuracy"] == [by_stage[0]["stage_accuracy"], by_stage[1]["stage_accuracy"]]
    assert curve["problems_seen"] == [by_stage[s]["step"] * cfg.train.batch_size for s in (0, 1)]
    epochs = [r for r in rows if r["type"] == "epoch"]
    assert curve["train_minutes"] == [round(epochs[0]["seconds"] / 60, 2),
                                      round((epochs[0]["seconds"] + epochs[1]["seconds"]) / 60, 2)]
