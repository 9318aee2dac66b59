"""CODI, PCCoT and SIM-CoT's step decoder against independent computations on tiny float64 models:
the distillation term and its gradient by hand, the Jacobi pass against one-latent-at-a-time updates and
against the sequential pass, the decoder's loss and where its gradient goes, and what a run, an export and
inference keep of each part."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from helpers import (MAX_NEW, bias_eos_to_stop_half, sensitive_model, tiny_config, tiny_model, tiny_prosqa, weights,
                     write_plan)
from latentcot.config import MethodConfig
from latentcot.data.records import Record
from latentcot.inference import generate, generate_naive
from latentcot.methods import build_method, method_class, tokenize_record
from latentcot.methods.step_decoder import decoder_loss_sum, new_decoder, step_slots
from latentcot.models import load_checkpoint_model, save_model
from latentcot.models.continuous import forward_hidden, jacobi_forward
from latentcot.models.projection import attach_latent_projection, feedback, latent_projection
from latentcot.runs import list_checkpoints
from latentcot.tokenization import BOT, EOT
from latentcot.training import Trainer, train
from latentcot.training.export import export_model

TOL = dict(rtol=1e-10, atol=1e-10)


def codi_setup(name="codi", n_records=3, seed=5, **cfg):
    records = tiny_prosqa(n_records, seed=seed)
    method_cfg = MethodConfig(name=name, **cfg)
    model, tokenizer = tiny_model(records, method_class(name).special_tokens)
    method = build_method(method_cfg, tokenizer)
    method.prepare_model(model)
    return records, model, tokenizer, method


def naive_student(model, method, tokenized, n):
    """One problem's student sequence with each latent set by re-running the whole prefix (no cache)."""
    t = method.token_ids
    ids = list(tokenized.question) + [t[BOT]] + [method.thought_id] * n + [t[EOT]] + list(tokenized.answer)
    embeds = model.get_input_embeddings()(torch.tensor([ids]))
    # the model's projection itself, not the library's feedback(): a path that skipped it must show
    project = latent_projection(model) or (lambda h: h)
    for i in range(n):
        col = len(tokenized.question) + 1 + i
        last = model(inputs_embeds=embeds[:, :col], output_hidden_states=True).hidden_states[-1][:, -1:]
        embeds = torch.cat([embeds[:, :col], project(last), embeds[:, col + 1:]], dim=1)
    return ids, model(inputs_embeds=embeds, output_hidden_states=True)


def smooth_l1_by_hand(a, b):
    d = (a - b).abs()
    return torch.where(d < 1, 0.5 * d ** 2, d - 0.5).mean()


def std_by_hand(x):
    return ((x - x.mean()) ** 2).sum().div(x.numel() - 1).sqrt()


def hand_codi_losses(model, method, records, tokenizer, detach_teacher=True, first_layer=0):
    """Student CE, teacher CE and the distillation, each summed over problems, computed one problem at a time."""
    student_ce = teacher_ce = distill = 0
    n = method.n_latents
    for record in records:
        tok = tokenize_record(record, tokenizer)
        ids, out = naive_student(model, method, tok, n)
        at = len(tok.question) + 1 + n  # <eot>, the position before the answer
        logits = out.logits[0]
        student_ce = student_ce + sum(F.cross_entropy(logits[at + j], torch.tensor(a), reduction="sum")
                                      for j, a in enumerate(tok.answer))
        steps = [i for s in tok.steps for i in s]
        teacher_ids = list(tok.question) + steps + [method.token_ids[EOT]] + list(tok.answer)
        teacher = model(input_ids=torch.tensor([teacher_ids]), output_hidden_states=True)
        labelled = list(range(len(tok.question), len(tok.question) + len(steps))) + \
            list(range(len(teacher_ids) - len(tok.answer), len(teacher_ids)))
        teacher_ce = teacher_ce + sum(F.cross_entropy(teacher.logits[0, i - 1], torch.tensor(teacher_ids[i]),
                                                      reduction="sum") for i in labelled)
        t_at = len(tok.question) + len(steps)
        terms = []
        for s_layer, t_layer in list(zip(out.hidden_states, teacher.hidden_states))[first_layer:]:
            target = t_layer[0, t_at].detach() if detach_teacher else t_layer[0, t_at]
            terms.append(smooth_l1_by_hand(s_layer[0, at], target) / std_by_hand(target))
        distill = distill + sum(terms) / len(terms)
    return student_ce, teacher_ce, distill


@pytest.mark.parametrize("name,first_layer", [("codi", 0), ("pccot", 1)])
def test_codi_losses_match_a_hand_computation_and_the_teacher_side_is_detached(name, first_layer):
    # PCCoT with as many iterations as latents has the sequential latents (see the Jacobi tests below), so
    # the same hand computation serves both; PCCoT leaves the embedding output out of the distillation
    records, model, tokenizer, method = codi_setup(name, latents=2, jacobi_iterations=2)
    tokenized = [tokenize_record(r, tokenizer) for r in records]
    examples = [method.train_example(t, 0, random.Random(0)) for t in tokenized]
    assert len({len(e.input_ids) for e in examples}) > 1  # padding is exercised
    batch = method.collate(examples, tokenizer.pad_token_id)
    parts = method.batch_loss(model, batch)
    student, teacher, distill = hand_codi_losses(model, method, records, tokenizer, first_layer=first_layer)
    assert torch.allclose(parts.lm_sum, student, **TOL)
    assert torch.allclose(parts.terms["teacher"], teacher, **TOL)
    assert torch.allclose(parts.terms["distill"], distill, **TOL)
    assert float(distill.detach()) > 0
    assert sum(e.loss_counts["teacher"] for e in examples) == sum(
        len([i for s in t.steps for i in s]) + len(t.answer) for t in tokenized)

    params = [p for p in model.parameters() if p.requires_grad]
    got = torch.autograd.grad(parts.terms["distill"], params, allow_unused=True)
    expected = torch.autograd.grad(distill, params, allow_unused=True)
    for g, e in zip(got, expected):
        if e is None:
            assert g is None or not g.abs().any()
        else:
            assert torch.allclose(g, e, rtol=1e-8, atol=1e-12)
    # the detachment matters: pulling the teacher too would give another gradient
    _, _, both_ways = hand_codi_losses(model, method, records, tokenizer, detach_teacher=False, first_layer=first_layer)
    other = torch.autograd.grad(both_ways, params, allow_unused=True)
    assert any(o is not None and e is not None and not torch.allclose(o, e, rtol=1e-6, atol=1e-9)
               for o, e in zip(other, expected))


def test_mse_distillation_is_the_squared_distance_over_the_spread():
    records, model, tokenizer, method = codi_setup(latents=1, distill_loss="mse")
    examples = [method.train_example(tokenize_record(r, tokenizer), 0, random.Random(0)) for r in records[:1]]
    parts = method.batch_loss(model, method.collate(examples, tokenizer.pad_token_id))
    tok = tokenize_record(records[0], tokenizer)
    _, out = naive_student(model, method, tok, 1)
    steps = [i for s in tok.steps for i in s]
    teacher = model(input_ids=torch.tensor([list(tok.question) + steps + [method.token_ids[EOT]] + list(tok.answer)]),
                    output_hidden_states=True)
    at, t_at = len(tok.question) + 2, len(tok.question) + len(steps)
    terms = [((s[0, at] - t[0, t_at]) ** 2).mean() / std_by_hand(t[0, t_at])
             for s, t in zip(out.hidden_states, teacher.hidden_states)]
    assert torch.allclose(parts.terms["distill"], sum(terms) / len(terms), **TOL)


# -- PCCoT's Jacobi pass ---------------------------------------------------------------------------

def jacobi_reference(model, embeds, start, n, iterations):
    """Jacobi one latent at a time, no cache: in each iteration latent i gets the output at position i - 1
    of a full re-run of the sequence up to it, all from the previous iteration's latents."""
    project = feedback(model)
    for _ in range(iterations):
        new = []
        for i in range(n):
            states = model(inputs_embeds=embeds[:, :start + i], output_hidden_states=True).hidden_states[-1]
            new.append(project(states[:, -1:]))
        embeds = torch.cat([embeds[:, :start], *new, embeds[:, start + n:]], dim=1)
    return model(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1], embeds[:, start:start + n]


def pccot_batch(records, tokenizer, method, n):
    examples = [method.render(tokenize_record(r, tokenizer), n, 0) for r in records]
    return examples, method.collate(examples, tokenizer.pad_token_id)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("iterations", [1, 2, 4])
def test_jacobi_pass_matches_one_latent_at_a_time_updates(arch, iterations):
    records = tiny_prosqa(3, seed=2)
    model, tokenizer = tiny_model(records, method_class("pccot").special_tokens, arch=arch)
    method = build_method(MethodConfig(name="pccot", latents=4, jacobi_iterations=iterations), tokenizer)
    method.prepare_model(model)
    examples, batch = pccot_batch(records, tokenizer, method, 4)
    got = jacobi_forward(model, batch["input_ids"], batch["attention_mask"], batch["thought_mask"],
                         iterations=iterations)
    assert bool((batch["attention_mask"] == 0).any())  # left padding is exercised
    for row, example in enumerate(examples):
        ids = torch.tensor([example.input_ids])
        hidden, latents = jacobi_reference(model, model.get_input_embeddings()(ids), example.thought_start, 4,
                                           iterations)
        real = batch["attention_mask"][row].bool()
        assert torch.allclose(got.hidden[row, real], hidden[0], **TOL)
        assert torch.allclose(got.latents[row], latents[0], **TOL)


@pytest.mark.parametrize("projection", [False, True], ids=["no-projection", "projection"])
def test_jacobi_with_as_many_iterations_as_latents_is_the_sequential_pass(projection):
    """Latent i is exact once i < t after t updates (it depends only on the latents before it), so T = N
    gives Coconut's latents (CODI's with the projection), and T = N - 1 does not."""
    records = tiny_prosqa(3, seed=4)
    model, tokenizer = tiny_model(records, method_class("pccot").special_tokens)
    if projection:
        attach_latent_projection(model)
        with torch.no_grad():  # a projection far from the identity, so that "equal" means something
            for p in latent_projection(model).parameters():
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    method = build_method(MethodConfig(name="pccot", latents=5, projection=projection), tokenizer)
    _, batch = pccot_batch(records, tokenizer, method, 5)
    args = (model, batch["input_ids"], batch["attention_mask"], batch["thought_mask"])
    sequential = forward_hidden(*args)
    exact = jacobi_forward(*args, iterations=5)
    assert torch.allclose(exact.latents, sequential.latents, **TOL)
    assert torch.allclose(exact.hidden, sequential.hidden, **TOL)
    short = jacobi_forward(*args, iterations=4)
    assert torch.allclose(short.latents[:, :4], sequential.latents[:, :4], **TOL)
    assert not torch.allclose(short.latents[:, 4], sequential.latents[:, 4], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["codi", "pccot"])
def test_batched_cached_generation_matches_the_uncached_reference(name):
    records = tiny_prosqa(6, seed=3)
    cfg = MethodConfig(name=name, latents=3, jacobi_iterations=2)
    model, tokenizer, method = sensitive_model(records, cfg, "gpt2")
    method.prepare_model(model)
    bias_eos_to_stop_half(model, tokenizer, method, records)  # its reference run is Coconut's; fine for a bias
    naive = generate_naive(model, tokenizer, method, records, max_new_tokens=MAX_NEW)
    assert len({tuple(g.token_ids) for g in naive}) > 1
    for batch_size in (6, 4):
        got = generate(model, tokenizer, method, records, batch_size=batch_size, max_new_tokens=MAX_NEW)
        assert [g.token_ids for g in got] == [g.token_ids for g in naive], batch_size
        passes = 1 + 2 if name == "pccot" else 1 + 3 + 1
        assert all(g.forward_passes == passes + len(g.token_ids) - 1 for g in got)
        assert all(g.n_thoughts == 3 for g in got)


# -- SIM-CoT's step decoder ------------------------------------------------------------------------

def test_step_slots_merge_extra_steps_into_the_last_and_give_the_answer_to_spare_latents():
    steps, answer = [[1], [2, 2], [3], [4]], [9]
    assert step_slots(4, steps, answer) == [[1], [2, 2], [3], [4]]
    assert step_slots(2, steps, answer) == [[1], [2, 2, 3, 4]]
    assert step_slots(6, steps, answer) == [[1], [2, 2], [3], [4], [9], [9]]
    assert step_slots(1, [], answer) == [[9]]


def test_coconut_thoughts_decode_the_steps_they_replace():
    records = [r for r in tiny_prosqa(12, seed=1) if len(r.steps) == 3][:1]
    model, tokenizer = tiny_model(records, method_class("coconut").special_tokens)
    cfg = MethodConfig(name="coconut", c_thought=2, max_latent_stage=2, epochs_per_stage=1, step_decoder=True)
    method = build_method(cfg, tokenizer)
    tok = tokenize_record(records[0], tokenizer)
    # stage 1: two thoughts for step 1; stage 3 (past the last latent stage): 4 thoughts, steps 2 and 3 merged
    one = method.train_example(tok, 1, random.Random(0))
    assert one.step_targets == [list(tok.steps[0])] * 2
    last = method.train_example(tok, 3, random.Random(0))
    assert last.step_targets == [list(tok.steps[0])] * 2 + [list(tok.steps[1]) + list(tok.steps[2])] * 2
    assert method.train_example(tok, 0, random.Random(0)).step_targets is None  # no thoughts, nothing to decode


def test_decoder_loss_matches_a_hand_computation_and_reaches_the_latents():
    records, model, tokenizer, method = codi_setup(latents=4, step_decoder=True)
    method.build_side_modules(model, None)
    decoder = method.side_modules["step_decoder"]
    assert latent_projection(decoder) is None and decoder is not model
    examples = [method.train_example(tokenize_record(r, tokenizer), 0, random.Random(0)) for r in records]
    batch = method.collate(examples, tokenizer.pad_token_id)
    passed = method.forward_hidden(model, batch["input_ids"], batch["attention_mask"], batch["thought_mask"])
    got = decoder_loss_sum(decoder, passed.latents, batch)

    expected = 0
    for row, example in enumerate(examples):
        per_latent = []
        for k, target in enumerate(example.step_targets):
            embeds = torch.cat([passed.latents[row, k][None, None],
                                decoder.get_input_embeddings()(torch.tensor([target]))], dim=1)
            logits = decoder(inputs_embeds=embeds).logits[0, :-1]
            per_latent.append(F.cross_entropy(logits, torch.tensor(target)))
        expected = expected + sum(per_latent) / len(per_latent)
    assert torch.allclose(got, expected, **TOL)

    # no stop-gradient: the loss reaches every latent, and through them the model's own weights
    latent_grad, embed_grad = torch.autograd.grad(got, [passed.latents, model.get_input_embeddings().weight])
    assert bool((latent_grad.abs().sum(-1) > 0).all())
    assert embed_grad.abs().sum() > 0


def test_with_the_decoder_weight_at_zero_the_model_trains_bit_identically(tmp_path):
    """The decoder's targets, batches, forward and optimizer entries leave the model's own steps alone."""
    records = tiny_prosqa(16, seed=2)
    for base in (["method.name=coconut"], ["method.name=codi", "method.latents=2"]):
        plain = train(tiny_config(tmp_path, "train.epochs=2", *base, name=f"plain_{base[0][-4:]}"),
                      train_records=records)
        off = train(tiny_config(tmp_path, "train.epochs=2", *base, "method.step_decoder=false",
                                name=f"off_{base[0][-4:]}"), train_records=records)
        zero = train(tiny_config(tmp_path, "train.epochs=2", *base, "method.step_decoder=true",
                                 "method.step_decoder_weight=0", name=f"zero_{base[0][-4:]}"), train_records=records)
        assert zero.method.side_modules and not plain.method.side_modules
        for other in (off, zero):
            for key, value in weights(plain.model).items():
                assert torch.equal(value, weights(other.model)[key]), (base, key)
        # and with weight 1 it does change them
        on = train(tiny_config(tmp_path, "train.epochs=2", *base, "method.step_decoder=true",
                               name=f"on_{base[0][-4:]}"), train_records=records)
        assert any(not torch.equal(v, weights(on.model)[k]) for k, v in weights(plain.model).items())
        assert "step_loss" in on.last_terms


def test_decoder_is_checkpointed_for_resume_and_left_out_of_exports_and_inference(tmp_path):
    records = tiny_prosqa(16, seed=3)
    overrides = ("train.epochs=2", "method.name=codi", "method.latents=2", "method.step_decoder=true")
    full = train(tiny_config(tmp_path, *overrides, name="full"), train_records=records)

    class Interrupt(Exception):
        pass

    def stop(trainer, epoch):
        raise Interrupt

    cfg = tiny_config(tmp_path, *overrides, name="cut")
    with pytest.raises(Interrupt):
        train(cfg, train_records=records, on_epoch_end=stop)
    resumed = Trainer(cfg, train_records=records)
    resumed.fit()
    for key, value in weights(full.model).items():
        assert torch.equal(value, weights(resumed.model)[key]), key
    full_decoder, resumed_decoder = full.method.side_modules["step_decoder"], resumed.method.side_modules["step_decoder"]
    for key, value in weights(full_decoder).items():
        assert torch.equal(value, weights(resumed_decoder)[key]), key

    checkpoint = list_checkpoints(cfg.output_dir)[-1]
    assert (checkpoint / "step_decoder" / "config.json").exists()
    out = export_model(cfg.output_dir, tmp_path / "exported")
    assert not (out / "step_decoder").exists()
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        keys = list(handle.keys())
    assert not any("step_decoder" in k for k in keys) and any(k.startswith("latent_projection.") for k in keys)
    model, tokenizer = load_checkpoint_model(out, "float32")
    assert latent_projection(model) is not None and not hasattr(model, "step_decoder")
    method = build_method(resumed.cfg.method, tokenizer)
    expected = generate(resumed.model, resumed.tokenizer, method, records[:4], max_new_tokens=8)
    got = generate(model, tokenizer, method, records[:4], max_new_tokens=8)
    assert [g.token_ids for g in got] == [g.token_ids for g in expected]


def test_projection_travels_through_save_and_load(tmp_path):
    records, model, tokenizer, method = codi_setup(latents=2, projection_dim=7)
    assert latent_projection(model).net[0].out_features == 7
    save_model(model, tokenizer, tmp_path / "m")
    loaded, _ = load_checkpoint_model(tmp_path / "m", "float64")
    assert latent_projection(loaded).net[0].out_features == 7
    for key, value in latent_projection(model).state_dict().items():
        assert torch.equal(value, latent_projection(loaded).state_dict()[key])


def test_bad_settings_are_refused_before_training(tmp_path):
    records = tiny_prosqa(4)
    cases = [
        (["method.name=codi", "method.latents=0"], "method.latents"),
        (["method.name=pccot", "method.projection_dim=0"], "method.projection_dim"),
        (["method.name=pccot", "method.jacobi_iterations=-1"], "method.jacobi_iterations"),
        (["method.name=codi", "method.halting=true"], "method.halting"),
        (["method.name=cot", "method.step_decoder=true"], "method.step_decoder"),
        (["method.name=coconut_wo_thought", "method.step_decoder=true"], "method.step_decoder"),
        (["method.name=codi", "method.step_decoder=true", "method.step_decoder_weight=-1"], "step_decoder_weight"),
    ]
    for overrides, key in cases:
        with pytest.raises(ValueError, match=key):
            Trainer(tiny_config(tmp_path, *overrides, name="bad"), train_records=records)
    stepless = [Record(r.question, [], r.answer, r.extra) for r in records]
    with pytest.raises(ValueError, match="method.step_decoder.*no training problem has steps"):
        Trainer(tiny_config(tmp_path, "method.name=coconut", "method.step_decoder=true", name="bad"),
                train_records=stepless)


def test_compare_eval_export_generate_and_analyses_take_the_new_methods(tmp_path, capsys):
    import json

    from latentcot.cli import main

    runs = [{"name": "cot", "overrides": ["method.name=cot"]},
            {"name": "codi", "overrides": ["method.name=codi", "train.init_from=@cot", "method.latents=2"]},
            {"name": "pccot", "overrides": ["method.name=pccot", "train.init_from=@cot", "method.latents=3",
                                            "method.jacobi_iterations=2"]},
            {"name": "codi_step_decoder", "overrides": ["method.name=codi", "train.init_from=@cot", "method.latents=2",
                                                        "method.step_decoder=true"]}]
    plan = write_plan(tmp_path, runs)
    assert main(["compare", str(plan)]) == 0
    out = tmp_path / "cmp"
    rows = {r["method"]: r for r in json.loads((out / "comparison.json").read_text())["rows"]}
    assert list(rows) == ["cot", "codi", "pccot", "codi_step_decoder"]
    for name, latents in (("codi", 2), ("pccot", 3), ("codi_step_decoder", 2)):
        lines = [json.loads(x) for x in (out / "eval" / f"{name}.jsonl").read_text().splitlines()]
        assert all(x["n_thoughts"] == latents and x["generated_tokens"] >= latents for x in lines)
    valid = str(tmp_path / "valid.json")
    for name in ("pccot", "codi_step_decoder"):
        run = str(out / name)
        assert main(["analyze", "search", run, "--data", valid, "--n-thoughts", "2",
                     "--out", str(tmp_path / name / "search")]) == 0
        assert json.loads((tmp_path / name / "search" / "search.json").read_text())["frontier"]
        assert main(["analyze", "paths", run, "--data", valid, "--k", "0..2", "--out", str(tmp_path / name / "paths"),
                     "--batch-size", "2"]) == 0
        exported = tmp_path / name / "exported"
        assert main(["export", run, "--out", str(exported)]) == 0
        assert not (exported / "step_decoder").exists()
        assert main(["eval", str(exported), "--data", valid, "--out", str(tmp_path / name / "eval.jsonl")]) == 0
        assert main(["generate", str(exported), "--question", tiny_prosqa(1)[0].question]) == 0


def test_resuming_with_the_other_step_decoder_setting_is_one_clear_error(tmp_path):
    records = tiny_prosqa(8, seed=3)
    train(tiny_config(tmp_path, "train.epochs=1", "method.step_decoder=true", name="run"), train_records=records)
    with pytest.raises(ValueError, match="method.step_decoder.*false.*trained with a step decoder"):
        Trainer(tiny_config(tmp_path, "train.epochs=2", name="run"), train_records=records)
    train(tiny_config(tmp_path, "train.epochs=1", name="plain"), train_records=records)
    with pytest.raises(ValueError, match="method.step_decoder.*true.*without a step decoder"):
        Trainer(tiny_config(tmp_path, "train.epochs=2", "method.step_decoder=true", name="plain"),
                train_records=records)


def test_a_teacher_sequence_beyond_the_context_is_refused_before_training(tmp_path):
    records = tiny_prosqa(8, seed=3)
    roomy = Trainer(tiny_config(tmp_path, "method.name=codi", "method.latents=1", name="roomy"), train_records=records)
    examples = [roomy.method.train_example(r, 0, random.Random(0)) for r in roomy.train_tokens]
    student = max(len(e.input_ids) for e in examples)
    teacher = max(len(e.companion.input_ids) for e in examples)
    assert teacher > student  # one latent is shorter than the written steps
    with pytest.raises(ValueError, match=f"model.n_positions.*holds {student} positions"):
        Trainer(tiny_config(tmp_path, "method.name=codi", "method.latents=1", f"model.n_positions={student}",
                            name="short"), train_records=records)
    Trainer(tiny_config(tmp_path, "method.name=codi", "method.latents=1", f"model.n_positions={teacher}",
                        name="fits"), train_records=records)


def test_latents_are_the_projection_of_the_states_they_come_from():
    records, model, tokenizer, method = codi_setup(latents=3)
    examples = [method.train_example(tokenize_record(r, tokenizer), 0, random.Random(0)) for r in records]
    batch = method.collate(examples, tokenizer.pad_token_id)
    passed = method.forward_hidden(model, batch["input_ids"], batch["attention_mask"], batch["thought_mask"])
    assert torch.allclose(passed.latents, latent_projection(model)(passed.latent_sources), **TOL)
    assert not torch.allclose(passed.latents, passed.latent_sources, rtol=1e-3, atol=1e-3)


def test_codi_latents_decode_one_step_each_whatever_c_thought_says():
    records = [r for r in tiny_prosqa(12, seed=1) if len(r.steps) == 3][:1]
    model, tokenizer = tiny_model(records, method_class("codi").special_tokens)
    method = build_method(MethodConfig(name="codi", latents=4, c_thought=2, step_decoder=True), tokenizer)
    tok = tokenize_record(records[0], tokenizer)
    targets = method.train_example(tok, 0, random.Random(0)).step_targets
    assert targets == [list(tok.steps[0]), list(tok.steps[1]), list(tok.steps[2]), list(tok.answer)]


def test_the_decoder_copy_runs_its_own_weights_even_under_a_compiled_forward():
    records, model, tokenizer, method = codi_setup(latents=2)
    base = model.base_model
    original = base.forward
    base.forward = lambda *a, **k: original(*a, **k)  # what train.compile puts on the instance
    decoder = new_decoder(model)
    assert "forward" not in decoder.base_model.__dict__
    with torch.no_grad():
        for p in decoder.parameters():
            p.zero_()
    ids = torch.tensor([[1, 2, 3]])
    assert not torch.allclose(decoder(ids).logits, model(ids).logits)


def test_projection_settings_that_do_not_fit_the_model_are_refused(tmp_path):
    records = tiny_prosqa(8, seed=3)
    train(tiny_config(tmp_path, "train.epochs=1", "method.name=codi", "method.latents=2", name="codi"),
          train_records=records)
    with pytest.raises(ValueError, match="method.projection_dim.*width"):
        Trainer(tiny_config(tmp_path, "method.name=codi", "method.latents=2", "method.projection_dim=5",
                            f"train.init_from={tmp_path / 'codi'}", name="other"), train_records=records)
    with pytest.raises(ValueError, match="method.projection.*false.*trained with one"):
        Trainer(tiny_config(tmp_path, "train.epochs=2", "method.name=codi", "method.latents=2",
                            "method.projection=false", name="codi"), train_records=records)
    # Coconut continued from a CODI run feeds the hidden state back as it is
    coconut = Trainer(tiny_config(tmp_path, f"train.init_from={tmp_path / 'codi'}", name="coconut"),
                      train_records=records)
    assert latent_projection(coconut.model) is None
