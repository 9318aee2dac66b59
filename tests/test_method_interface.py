"""The method interface is explicit: what is continuous is a type, adaptive thinking goes through the method's
own pass, the trainer asks only the interface, and analyses read thoughts per step from the method."""

import ast
import json
from pathlib import Path

import pytest
import torch

from helpers import tiny_config, tiny_model, tiny_prosqa
from latentcot.config import MethodConfig
from latentcot.methods import (METHODS, Coconut, ContinuousThoughts, build_method, continuous_thoughts,
                               tokenize_records)
from latentcot.tokenization import METHOD_TOKENS

SRC = Path(__file__).resolve().parents[1] / "src" / "latentcot"


def _built(name):
    records = tiny_prosqa(2)
    _, tok = tiny_model(records, METHOD_TOKENS)
    return build_method(MethodConfig(name=name), tok)


# assorted builds only with a trained VQ-VAE; it is a plain Method, as the class check below shows
def test_assorted_is_not_a_continuous_method():
    assert not issubclass(METHODS["assorted"], ContinuousThoughts) and not METHODS["assorted"].continuous


@pytest.mark.parametrize("name", [n for n in METHODS if n != "assorted"])
def test_continuous_is_the_type_and_the_ablations_are_not_of_it(name):
    method = _built(name)
    assert method.continuous == isinstance(method, ContinuousThoughts)
    expected = {"coconut", "coconut_wo_curriculum", "codi", "pccot"}
    assert isinstance(method, ContinuousThoughts) == (name in expected)
    if name in expected:
        assert continuous_thoughts(method, "x") is method
    else:
        with pytest.raises(ValueError, match=f"x needs a continuous-thought method .*'{name}' has no continuous"):
            continuous_thoughts(method, "x")


def _calls_outside_methods():
    """Every attribute read on a variable called ``method`` (or ``thinker``) outside latentcot.methods."""
    seen = set()
    for path in SRC.rglob("*.py"):
        if "methods" in path.relative_to(SRC).parts or path.name == "config.py":  # config's `method` is a dict
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("method", "thinker"):
                seen.add(node.attr)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == "method" and isinstance(node.value.value, ast.Name) \
                    and node.value.value.id == "self":
                seen.add(node.attr)
    return seen


def test_every_call_made_on_a_method_is_declared_in_base():
    from latentcot.methods import base

    declared = set(vars(base.Method)) | set(vars(base.ContinuousThoughts)) | set(base.Method.__annotations__)
    # attributes set in Method.__init__
    declared |= {"cfg", "tokenizer", "run_dir", "token_ids", "side_modules", "thought_id"}
    undeclared = _calls_outside_methods() - declared
    assert not undeclared, f"called on a method but not declared in methods/base.py: {sorted(undeclared)}"


def test_no_hasattr_or_name_branches_on_methods_outside_them():
    for folder in ("inference", "evaluation", "analysis", "training"):
        for path in (SRC / folder).rglob("*.py"):
            text = path.read_text()
            assert "hasattr(method" not in text and "getattr(method" not in text, path
            assert "method.name ==" not in text and "method.name in" not in text, path


def test_the_trainer_names_no_method_feature():
    """The trainer's code (its comments aside) names no halting head, frontier or thought targets, CODI teacher."""
    tree = ast.parse((SRC / "training" / "trainer.py").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    for feature in ("halting", "frontier", "stage_target", "thought_targets", "companion", "teacher", "c_thought"):
        assert not [n for n in names if feature in n], feature


def test_adaptive_thinking_goes_through_the_methods_forward_hidden(monkeypatch):
    from latentcot.inference import generate
    from latentcot.models.halting import attach_halting_head

    records = tiny_prosqa(3)
    model, tok = tiny_model(records, METHOD_TOKENS, arch="llama")
    attach_halting_head(model)
    model.eval()
    method = build_method(MethodConfig(name="coconut", halting=True, max_thoughts=3), tok)
    with torch.no_grad():  # a head that never stops: every problem takes the cap of 3 thoughts
        head = model.halting_head.net[-1]
        head.weight.zero_()
        head.bias.fill_(-20.0)
    calls = []
    original = Coconut.forward_hidden

    def spy(self, model, input_ids, attention_mask, thought_mask=None, cache=None, return_layers=False,
            previous=None):
        calls.append((input_ids.shape[1], None if thought_mask is None else thought_mask.clone(), previous is not None))
        return original(self, model, input_ids, attention_mask, thought_mask, cache, return_layers, previous)

    monkeypatch.setattr(Coconut, "forward_hidden", spy)
    auto = generate(model, tok, method, records, batch_size=3, n_thoughts="auto", max_new_tokens=4)
    thought_steps = [mask for width, mask, cont in calls if cont and mask is not None and bool(mask.any())]
    assert len(thought_steps) == 3 and all(bool(m.all()) for m in thought_steps)
    assert all(g.n_thoughts == 3 for g in auto)
    monkeypatch.setattr(Coconut, "forward_hidden", original)
    # the same as three fixed thoughts, which the fixed-count pass computes in one call
    fixed = generate(model, tok, method, records, batch_size=3, n_thoughts=3, max_new_tokens=4)
    assert [g.token_ids for g in auto] == [g.token_ids for g in fixed]


def test_a_continued_pass_equals_one_pass_over_the_whole_sequence():
    """forward_hidden(previous=...) continuing a cache gives what one pass over the whole sequence gives."""
    from transformers import DynamicCache

    from latentcot.models.continuous import forward_hidden

    records = tiny_prosqa(2)
    model, tok = tiny_model(records, METHOD_TOKENS, arch="llama")
    model.eval()
    method = build_method(MethodConfig(name="coconut"), tok)
    batch = method.collate([method.prompt(r, 2) for r in tokenize_records(records, tok)], tok.pad_token_id,
                           align="end")
    ids, mask, thoughts = batch["input_ids"], batch["attention_mask"], batch["thought_mask"]
    with torch.no_grad():
        whole = forward_hidden(model, ids, mask, thoughts).hidden
        start = int(thoughts.any(0).nonzero()[0])
        first = forward_hidden(model, ids[:, :start], mask[:, :start], None, DynamicCache(config=model.config))
        hidden, cache = first.hidden[:, -1:], first.cache
        for col in range(start, ids.shape[1]):
            step = forward_hidden(model, ids[:, col:col + 1], mask[:, :col + 1], thoughts[:, col:col + 1], cache,
                                  previous=hidden)
            hidden, cache = step.hidden[:, -1:], step.cache
            assert torch.allclose(hidden, whole[:, col:col + 1], atol=1e-10)


def test_analyze_thoughts_on_a_codi_run_reads_its_thoughts_per_step(tmp_path):
    """CODI's latent k stands for step k (thoughts_per_step 1, whatever method.c_thought says), so a depth-d
    problem's latent steps are used up after min(d, latents) thoughts, not c_thought * min(d, max_latent_stage)."""
    from latentcot.cli import main
    from latentcot.data.io import save_records
    from latentcot.training import train

    cfg = tiny_config(tmp_path, "method.name=codi", "method.latents=2", "train.epochs=1", name="codi")
    train(cfg, train_records=tiny_prosqa(8))
    data = tmp_path / "valid.json"
    records = tiny_prosqa(6, seed=3)
    save_records(records, str(data))
    assert main(["analyze", "thoughts", cfg.output_dir, "--data", str(data), "--k", "1,2",
                 "--out", str(tmp_path / "thoughts")]) == 0
    report = json.loads((tmp_path / "thoughts" / "thoughts.json").read_text())
    depths = sorted({len(r.steps) for r in records})
    assert max(depths) > 2  # a problem deeper than the latents, where the two readings differ
    assert report["needed_thoughts"] == {str(d): min(d, 2) for d in depths}
    assert main(["analyze", "steps", cfg.output_dir, "--data", str(data), "--out", str(tmp_path / "steps")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "steps" / "steps.jsonl").read_text().splitlines()]
    for row, record in zip(rows, records):
        # two latents stand for the first two steps; the written chain is compared from step 3 on
        assert row["n_thoughts"] == 2
        assert row["offset"] == min(2, len(record.steps))
