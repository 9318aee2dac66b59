"""Adaptive thinking: the halting head's targets and loss, its save/load, and `auto` inference against
independent recomputations (each row alone, and a fixed-count run with the count auto chose)."""

import json
import random
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from helpers import MAX_NEW, reference_generate, sensitive_model, tiny_model, tiny_prosqa
from latentcot.cli import main as run_cli
from latentcot.config import Config, ConfigError, MethodConfig, apply_overrides, load_config
from latentcot.data.io import save_records
from latentcot.inference import generate, generate_naive
from latentcot.methods import METHODS, build_method, tokenize_record
from latentcot.models import load_checkpoint_model, save_model
from latentcot.models.continuous import batch_loss, collate
from latentcot.models.halting import IGNORE_TARGET, attach_halting_head, halting_head
from latentcot.runs import CheckpointError
from latentcot.tokenization import BOT
from latentcot.training import train
from latentcot.training.metrics import read_metrics

CAP = 4
HALTING = MethodConfig(name="coconut", max_latent_stage=CAP, c_thought=1, pad_latent_to_max=True, halting=True,
                       inference_thoughts="auto")


@torch.no_grad()
def naive_hidden(model, method, record, tokenizer, n_thoughts):
    """Final hidden states of one problem's prompt with n thoughts, each thought filled by re-running the
    whole prefix (no cache)."""
    example = method.prompt(tokenize_record(record, tokenizer), n_thoughts)
    ids = torch.tensor([example.input_ids])
    embeds = model.get_input_embeddings()(ids)
    for col in range(ids.shape[1]):
        if ids[0, col] == method.thought_id:
            hidden = model(inputs_embeds=embeds, output_hidden_states=True, use_cache=False).hidden_states[-1]
            embeds = embeds.clone()
            embeds[0, col] = hidden[0, col - 1]
    return model(inputs_embeds=embeds, output_hidden_states=True, use_cache=False).hidden_states[-1][0], example


def test_targets_sit_at_bot_and_each_thought_and_turn_on_when_the_latent_steps_are_used_up():
    records = [tiny_prosqa(12, seed=1)[i] for i in (0, 1, 11)]
    assert [len(r.steps) for r in records] == [2, 3, 4]
    model, tokenizer = tiny_model(records, METHODS["coconut"].special_tokens)
    cfg = MethodConfig(name="coconut", max_latent_stage=3, c_thought=2, pad_latent_to_max=True, epochs_per_stage=1,
                       halting=True)
    method = build_method(cfg, tokenizer)
    # stage 3 pads every problem to 6 thoughts; a problem with s steps has used them up after 2*min(s, 3)
    examples = [method.train_example(tokenize_record(r, tokenizer), 3, random.Random(0)) for r in records]
    batch = collate(examples, tokenizer.pad_token_id, method.thought_id)
    bot = tokenizer.convert_tokens_to_ids(BOT)
    for row, record in enumerate(records):
        at_bot = int((batch["input_ids"][row] == bot).nonzero())
        needed = 2 * min(len(record.steps), 3)
        expected = torch.full_like(batch["halt_targets"][row], IGNORE_TARGET)
        expected[at_bot:at_bot + 7] = torch.tensor([float(j >= needed) for j in range(7)])
        assert torch.equal(batch["halt_targets"][row], expected), row
        # decisions 1..6 read the thought positions, decision 0 reads <bot>
        assert (batch["input_ids"][row, at_bot + 1:at_bot + 7] == method.thought_id).all()


def test_halting_loss_is_the_bce_of_the_head_on_independently_recomputed_states():
    records = tiny_prosqa(4, seed=6)
    cfg = MethodConfig(name="coconut", max_latent_stage=3, c_thought=1, pad_latent_to_max=True, halting=True)
    model, tokenizer = tiny_model(records, METHODS["coconut"].special_tokens)
    attach_halting_head(model)
    method = build_method(cfg, tokenizer)
    tokenized = [tokenize_record(r, tokenizer) for r in records]
    examples = [method.render(t, 3, 0) for t in tokenized]
    parts = batch_loss(model, collate(examples, tokenizer.pad_token_id, method.thought_id))

    expected, count = torch.zeros(()), 0
    head = halting_head(model)
    for record, example in zip(records, examples):
        hidden, prompt = naive_hidden(model, method, record, tokenizer, 3)
        states = hidden[example.halt_from:example.halt_from + 4]
        targets = torch.tensor([float(j >= min(len(record.steps), 3)) for j in range(4)])
        expected = expected + F.binary_cross_entropy_with_logits(head(states), targets, reduction="sum")
        count += 4
    assert sum(e.loss_counts["halt"] for e in examples) == count
    halt_sum = parts.terms["halt"]
    assert torch.allclose(halt_sum, expected, rtol=1e-10, atol=1e-10)
    # and it trains the head: the gradient reaches its weights
    halt_sum.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_head_travels_through_a_checkpoint_quietly(tmp_path, capfd):
    records = tiny_prosqa(2)
    model, tokenizer = tiny_model(records, (), dtype="float32")  # the dtype a checkpoint loads in
    head = attach_halting_head(model)
    save_model(model, tokenizer, tmp_path / "ckpt")
    capfd.readouterr()
    loaded, _ = load_checkpoint_model(tmp_path / "ckpt")
    out = capfd.readouterr()
    assert "UNEXPECTED" not in out.out + out.err
    x = torch.randn(5, model.get_input_embeddings().embedding_dim)
    assert torch.equal(halting_head(loaded)(x), head(x))
    # a model without one loads without one
    plain, _ = tiny_model(records, ())
    save_model(plain, tokenizer, tmp_path / "plain")
    assert halting_head(load_checkpoint_model(tmp_path / "plain")[0]) is None
    # quiet about the head only: a backbone weight gone missing is still an error that names it
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "ckpt" / "model.safetensors")
    dropped = next(k for k in weights if k.endswith("mlp.c_fc.weight"))
    save_file({k: v for k, v in weights.items() if k != dropped}, tmp_path / "ckpt" / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"missing .*mlp\.c_fc\.weight"):
        load_checkpoint_model(tmp_path / "ckpt")


def stop_probabilities(model, method, tokenizer, record, cap):
    """P(stop) at decisions 0..cap of one problem, from states recomputed without a cache."""
    hidden, example = naive_hidden(model, method, record, tokenizer, cap)
    start = len(tokenize_record(record, tokenizer).question)  # <bot>
    return torch.sigmoid(halting_head(model)(hidden[start:start + cap + 1])).tolist()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_auto_batches_match_each_row_alone_and_the_fixed_count_it_chose(arch):
    records = tiny_prosqa(6, seed=3)
    model, tokenizer, method = sensitive_model(records, HALTING, arch)
    attach_halting_head(model)
    with torch.no_grad():
        for p in halting_head(model).parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    probs = [stop_probabilities(model, method, tokenizer, r, CAP) for r in records]
    # the threshold (a midpoint between two probabilities, so no row sits on it) that spreads the rows'
    # stopping points the most
    flat = sorted(p for row in probs for p in row)

    def counts_at(threshold):
        return [next((j for j, p in enumerate(row) if p > threshold), CAP) for row in probs]

    threshold = max(((a + b) / 2 for a, b in zip(flat, flat[1:]) if b - a > 1e-4),
                    key=lambda t: len(set(counts_at(t))))
    counts = counts_at(threshold)
    assert len(set(counts)) >= 3, counts

    expected = [reference_generate(model, tokenizer, method, r, MAX_NEW, n)[0] for r, n in zip(records, counts)]
    for batch_size in (6, 4, 1):
        got = generate(model, tokenizer, method, records, batch_size=batch_size, n_thoughts="auto",
                       max_new_tokens=MAX_NEW, halt_threshold=threshold)
        assert [g.n_thoughts for g in got] == counts, batch_size
        assert [g.token_ids for g in got] == expected, batch_size
        assert [g.generated_tokens for g in got] == [n + len(ids) for n, ids in zip(counts, expected)]
        assert [g.forward_passes for g in got] == [2 + n + len(ids) - 1 for n, ids in zip(counts, expected)]
    # the run's own default (inference_thoughts: auto, at its halt_threshold) is adaptive too, and so is the
    # no-cache baseline
    own = build_method(replace(HALTING, halt_threshold=threshold), tokenizer)
    assert [g.token_ids for g in generate(model, tokenizer, own, records, max_new_tokens=MAX_NEW)] == expected
    naive = generate_naive(model, tokenizer, method, records, n_thoughts="auto", max_new_tokens=MAX_NEW,
                           halt_threshold=threshold)
    assert [g.n_thoughts for g in naive] == counts and [g.token_ids for g in naive] == expected
    # the cap holds: with a threshold nothing exceeds, every row thinks exactly max_thoughts
    capped = build_method(replace(HALTING, max_thoughts=2), tokenizer)
    assert {g.n_thoughts for g in generate(model, tokenizer, capped, records, n_thoughts="auto",
                                           max_new_tokens=2, halt_threshold=1.0)} == {2}
    # and no thought at all: a cap of 0, or a threshold every probability exceeds; either is the fixed k=0 run
    zero = [reference_generate(model, tokenizer, method, r, MAX_NEW, 0)[0] for r in records]
    for threshold, cap in ((1.0, 0), (0.0, CAP)):
        capped = build_method(replace(HALTING, max_thoughts=cap), tokenizer)
        got = generate(model, tokenizer, capped, records, batch_size=4, n_thoughts="auto", max_new_tokens=MAX_NEW,
                       halt_threshold=threshold)
        assert [g.n_thoughts for g in got] == [0] * len(records) and [g.token_ids for g in got] == zero
    with pytest.raises(ValueError, match="halt_threshold must be a probability in"):
        generate(model, tokenizer, method, records, n_thoughts="auto", halt_threshold=1.5)


def test_auto_needs_a_head_and_a_continuous_method():
    records = tiny_prosqa(2)
    model, tokenizer, method = sensitive_model(records, HALTING, "gpt2")
    with pytest.raises(ValueError, match="halting head"):
        generate(model, tokenizer, method, records, n_thoughts="auto")
    # a method without continuous thoughts: refused when its config is read
    with pytest.raises(ConfigError, match="command line: config key 'method.halting' is a coconut or "
                                          "coconut_wo_curriculum key; this run's method is cot"):
        apply_overrides(Config(), ["method.name=cot", "method.halting=true"])
    with pytest.raises(ConfigError, match="config key 'method.inference_thoughts': auto .* needs coconut or "
                                          "coconut_wo_curriculum; method 'coconut_pause_as_thought' has no halting "
                                          "head"):
        apply_overrides(Config(), ["method.name=coconut_pause_as_thought", "method.inference_thoughts=auto"])


def test_the_old_key_n_thoughts_still_loads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method:\n  name: coconut\n  n_thoughts: 3\n")
    assert load_config(path).method.inference_thoughts == 3
    assert load_config(path, ["method.n_thoughts=auto"]).method.inference_thoughts == "auto"
    assert load_config(path, ["method.inference_thoughts=2"]).method.inference_thoughts == 2
    both = tmp_path / "both.yaml"
    both.write_text("method:\n  n_thoughts: 3\n  inference_thoughts: 2\n")
    with pytest.raises(ConfigError, match="'method.n_thoughts' and 'method.inference_thoughts'"):
        load_config(both)
    with pytest.raises(ConfigError, match="expected an integer or 'auto', got 'aoto'"):
        load_config(path, ["method.inference_thoughts=aoto"])


@pytest.mark.parametrize("key,value", [("halt_threshold", 1.5), ("halt_weight", -1.0), ("max_thoughts", -2),
                                       ("inference_thoughts", -3)])
def test_adaptive_keys_out_of_range_are_refused(key, value):
    records = tiny_prosqa(2)
    _, tokenizer = tiny_model(records, METHODS["coconut"].special_tokens)
    with pytest.raises(ValueError, match=f"method.{key}"):
        build_method(replace(HALTING, **{key: value}), tokenizer)


def halting_config(tmp_path, name, *extra):
    return apply_overrides(Config(), [
        f"output_dir={tmp_path / name}", "model.preset=tiny", "model.n_positions=256", "train.batch_size=8",
        "train.lr=3e-3", "train.progress=false", "train.eval_every=0", "train.log_every=1", "seed=0",
        "method.name=coconut", "method.epochs_per_stage=1", "method.max_latent_stage=2", "train.epochs=1", *extra])


def test_runs_refuse_auto_without_a_head_and_a_resume_that_toggles_it_before_training(tmp_path, capfd):
    records = tiny_prosqa(8)
    with pytest.raises(ValueError, match="method.inference_thoughts.*method.halting=true"):
        train(halting_config(tmp_path, "a", "method.inference_thoughts=auto"), train_records=records)
    assert not (tmp_path / "a" / "checkpoints").exists()
    train(halting_config(tmp_path, "b"), train_records=records)
    with pytest.raises(ValueError, match="method.halting.*without a halting head"):
        train(halting_config(tmp_path, "b", "method.halting=true", "train.epochs=2"), train_records=records)
    # continuing a model with a head but without training it drops the head (and says so)
    train(halting_config(tmp_path, "c", "method.halting=true"), train_records=records)
    capfd.readouterr()
    plain = train(halting_config(tmp_path, "d", f"train.init_from={tmp_path / 'c'}"), train_records=records)
    assert halting_head(plain.model) is None and "halting head is dropped" in capfd.readouterr().err
    assert halting_head(load_checkpoint_model(tmp_path / "d" / "checkpoints" / "epoch_001")[0]) is None


def test_a_run_trained_with_halting_logs_the_head_saves_it_and_evaluates_with_auto(tmp_path):
    records = tiny_prosqa(24, seed=2)
    cfg = apply_overrides(Config(), [
        f"output_dir={tmp_path / 'run'}", "model.preset=tiny", "model.n_positions=256", "train.batch_size=8",
        "train.lr=3e-3", "train.progress=false", "train.eval_every=0", "train.log_every=1", "seed=0",
        "method.name=coconut", "method.epochs_per_stage=1", "method.max_latent_stage=3", "train.epochs=8",
        "method.start_stage=3", "method.pad_latent_to_max=true", "method.halting=true",
        "method.inference_thoughts=auto",
        "model.dtype=float64"])  # eval, the analyses and export score it at other batch sizes, compared exactly
    trainer = train(cfg, train_records=records)
    logged = [m for m in read_metrics(tmp_path / "run" / "metrics.jsonl") if m["type"] == "train"]
    assert all("halt_loss" in m for m in logged)
    # every epoch has 3 thoughts a problem and the same targets (stop after 2 or 3): the head learns them
    assert sum(m["halt_loss"] for m in logged[-3:]) < 0.7 * sum(m["halt_loss"] for m in logged[:3])
    assert halting_head(trainer.model) is not None
    data = tmp_path / "valid.json"
    save_records(tiny_prosqa(6, seed=9), data)
    out = tmp_path / "auto.jsonl"
    assert run_cli(["eval", str(tmp_path / "run"), "--data", str(data), "--n-thoughts", "auto",
                    "--out", str(out)]) == 0
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["n_thoughts"] == "auto"
    assert summary["mean_thoughts"] == pytest.approx(sum(r["n_thoughts"] for r in rows) / len(rows))
    assert all(0 <= r["n_thoughts"] <= 3 for r in rows)
    # --halt-threshold overrides the run's: at 1 no stop probability exceeds it, so every problem hits the cap
    capped = tmp_path / "capped.jsonl"
    assert run_cli(["eval", str(tmp_path / "run"), "--data", str(data), "--n-thoughts", "auto",
                    "--halt-threshold", "1", "--out", str(capped)]) == 0
    assert json.loads(capped.with_suffix(".summary.json").read_text())["mean_thoughts"] == 3
    by_steps = {int(k): v for k, v in summary["by_steps"].items()}
    assert sum(v["n_problems"] for v in by_steps.values()) == len(rows)
    assert set(by_steps) == {r["n_steps"] for r in rows}
    # the depth analysis: fixed counts and auto side by side, by number of steps, and a picture
    assert run_cli(["analyze", "thoughts", str(tmp_path / "run"), "--data", str(data), "--k", "1,3,auto",
                    "--out", str(tmp_path / "thoughts"), "--batch-size", "4"]) == 0
    report = json.loads((tmp_path / "thoughts" / "thoughts.json").read_text())
    assert list(report["by_setting"]) == ["1", "3", "auto"]
    assert report["by_setting"]["1"]["mean_thoughts"] == 1 and report["by_setting"]["3"]["mean_thoughts"] == 3
    auto = report["by_setting"]["auto"]
    assert auto["accuracy"] == summary["accuracy"] and auto["by_steps"] == summary["by_steps"]
    assert report["best_fixed"] in ("1", "3")
    assert (tmp_path / "thoughts" / "thoughts.png").stat().st_size > 0
    # an export keeps the head, thinks adaptively by default and says so on its card
    assert run_cli(["export", str(tmp_path / "run"), "--out", str(tmp_path / "model"), "--eval-data", str(data),
                    "--batch-size", "4"]) == 0
    card = (tmp_path / "model" / "README.md").read_text()
    assert f"the halting head chose {summary['mean_thoughts']:.2f} thoughts on average" in card
    assert halting_head(load_checkpoint_model(tmp_path / "model")[0]) is not None
    # the path analysis takes auto beside fixed counts, and the report reads it
    assert run_cli(["analyze", "paths", str(tmp_path / "run"), "--data", str(data), "--k", "0,auto",
                    "--out", str(tmp_path / "paths"), "--batch-size", "4"]) == 0
    paths = json.loads((tmp_path / "paths" / "paths.json").read_text())
    assert list(paths["by_k"]) == ["0", "auto"] and paths["by_k"]["auto"]["accuracy"] == summary["accuracy"]
    assert run_cli(["report", str(tmp_path / "run"), "--analysis", str(tmp_path / "paths"),
                    "--out", str(tmp_path / "report")]) == 0
    assert "auto" in (tmp_path / "report" / "report.md").read_text()


def test_eval_halt_threshold_is_passed_not_written_into_the_run_config(tmp_path, monkeypatch):
    """``--halt-threshold`` changes where the shipped halting model stops thinking for that call; the config it
    loaded stays as the run saved it."""
    from conftest import REPO
    from latentcot.data.generators import generate as generate_problems
    from latentcot.evaluation import cli as eval_cli

    loaded, load_run = [], eval_cli.load_run

    def load_and_keep(run_dir):
        loaded.append(load_run(run_dir))
        return loaded[-1]

    monkeypatch.setattr(eval_cli, "load_run", load_and_keep)
    save_records(generate_problems("prosqa", 4, 5), tmp_path / "p.json")
    counts = {}
    for threshold in ("0.0", "1.0", None):
        out = tmp_path / f"{threshold}.jsonl"
        args = ["eval", str(REPO / "models" / "prosqa-coconut_halting"), "--data", str(tmp_path / "p.json"),
                "--out", str(out), "--n-thoughts", "auto"] + (["--halt-threshold", threshold] if threshold else [])
        assert run_cli(args) == 0
        counts[threshold] = [json.loads(line)["n_thoughts"] for line in out.read_text().splitlines()]
        assert loaded[-1][3].cfg.halt_threshold == 0.5  # the run's own, as saved
    assert counts["0.0"] == [0] * 4 and counts["1.0"] == [6] * 4  # stop at once; think up to the cap
    assert all(0 < n < 6 for n in counts[None]), counts
