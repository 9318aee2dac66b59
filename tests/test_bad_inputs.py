"""Every CLI command against a table of bad inputs.

Each case must end with a non-zero exit, exactly one line on stderr that names the culprit (the file,
flag, config key or word at fault) and no traceback, and leave every file that was there untouched.
The cases share one tiny trained Coconut run, which is hashed before and after each case.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from helpers import tiny_prosqa
from latentcot.cli import main
from latentcot.data.io import save_records


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from latentcot.config import Config, apply_overrides
    from latentcot.training import train

    root = tmp_path_factory.mktemp("bad_inputs")
    save_records(tiny_prosqa(12), root / "train.json")
    save_records(tiny_prosqa(3, seed=7), root / "valid.json")
    cfg = apply_overrides(Config(), [
        f"output_dir={root / 'run'}", f"data.train={root / 'train.json'}", "model.preset=tiny",
        "model.n_positions=160", "method.name=coconut", "method.max_latent_stage=1", "method.epochs_per_stage=1",
        "train.epochs=1", "train.batch_size=4", "train.progress=false", "train.eval_every=0",
        "method.max_new_tokens=8"])
    train(cfg)
    (checkpoint,) = (root / "run" / "checkpoints").iterdir()

    # a run whose newest checkpoint was cut short while copying, with an intact older one below it
    shutil.copytree(root / "run", root / "truncated")
    newest = root / "truncated" / "checkpoints" / "epoch_002"
    shutil.copytree(root / "truncated" / "checkpoints" / checkpoint.name, newest)
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (newest / "state.json").write_text(json.dumps({**json.loads((newest / "state.json").read_text()), "epoch": 2}))

    # the same model told to read the compact graph encoding: its word outputs map to no node id
    shutil.copytree(checkpoint, root / "graph_run")
    config = root / "graph_run" / "config.yaml"
    config.write_text(config.read_text().replace("encoding: text", "encoding: graph"))

    # a checkpoint without weights, and one whose tokenizer is not the model's
    shutil.copytree(checkpoint, root / "no_weights")
    (root / "no_weights" / "model.safetensors").unlink()
    shutil.copytree(checkpoint, root / "other_vocab")
    tokenizer = json.loads((root / "other_vocab" / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    for i in range(50):
        vocab[f"extra{i}"] = len(vocab)
    (root / "other_vocab" / "tokenizer.json").write_text(json.dumps(tokenizer))

    (root / "empty.json").write_text("")
    (root / "empty_list.json").write_text("[]")
    record = tiny_prosqa(1)[0].to_dict()
    (root / "empty_question.json").write_text(json.dumps([{**record, "question": "  "}]))
    (root / "no_steps.json").write_text(json.dumps([{**r.to_dict(), "steps": []} for r in tiny_prosqa(4)]))
    (root / "not_a_list.json").write_text(json.dumps({"question": "q"}))
    (root / "a_file").write_text("I am a file, not a folder")
    (root / "plan.yaml").write_text("runs:\n  - name: a\n    overrides: [train.epochs=1]\n    colour: red\n")
    (root / "bad_types.yaml").write_text("train:\n  lr: fast\n")
    return root


def run(argv):
    return main([str(a) for a in argv])


Q = tiny_prosqa(1)[0].question
# (id, argv with {root} for the fixture's folder, words the single stderr line must contain)
CASES = [
    # generate
    ("generate-empty-question", ["generate", "{root}/run", "--question", ""], ["--question", "empty"]),
    ("generate-blank-question", ["generate", "{root}/run", "--question", "   "], ["--question", "empty"]),
    ("generate-unknown-words", ["generate", "{root}/run", "--question", "Every blicket is a dax. Is Tom a dax?"],
     ["--question", "'blicket'", "'dax'"]),
    ("generate-too-many-thoughts", ["generate", "{root}/run", "--question", Q, "--n-thoughts", "100000"],
     ["100000 thoughts", "at most 160 positions"]),
    ("generate-negative-thoughts", ["generate", "{root}/run", "--question", Q, "--n-thoughts", "-1"],
     ["--n-thoughts"]),
    ("generate-too-many-new-tokens", ["generate", "{root}/run", "--question", Q, "--max-new-tokens", "5000"],
     ["max_new_tokens 5000", "at most 160"]),
    ("generate-zero-new-tokens", ["generate", "{root}/run", "--question", Q, "--max-new-tokens", "0"],
     ["--max-new-tokens"]),
    ("generate-unwritable-out", ["generate", "{root}/run", "--data", "{root}/train.json", "--out",
                                 "{root}/a_file/out.jsonl"], ["--out", "a_file"]),
    ("generate-option-in-no-fact", ["generate", "{root}/graph_run", "--question",
                                    "Every blicket is a dax. Tom is a blicket. Is Tom a dax or wug?"],
     ["--question", "option 'wug' appears in no fact"]),
    ("generate-missing-run", ["generate", "{root}/nowhere", "--question", Q], ["nowhere"]),
    ("generate-run-without-weights", ["generate", "{root}/no_weights", "--question", Q],
     ["no_weights", "model.safetensors"]),
    ("generate-truncated-weights", ["generate", "{root}/truncated", "--question", Q],
     ["epoch_002/model.safetensors", "corrupt or partial"]),
    ("generate-vocabulary-mismatch", ["generate", "{root}/other_vocab", "--question", Q],
     ["other_vocab", "different runs"]),
    ("generate-empty-file", ["generate", "{root}/run", "--data", "{root}/empty.json"], ["empty.json"]),
    # eval
    ("eval-missing-data", ["eval", "{root}/run", "--data", "{root}/missing.json"], ["missing.json"]),
    ("eval-empty-list", ["eval", "{root}/run", "--data", "{root}/empty_list.json"], ["empty_list.json"]),
    ("eval-empty-question", ["eval", "{root}/run", "--data", "{root}/empty_question.json"],
     ["empty_question.json", "record 0", "question"]),
    ("eval-not-a-list", ["eval", "{root}/run", "--data", "{root}/not_a_list.json"], ["not_a_list.json"]),
    ("eval-unwritable-out", ["eval", "{root}/run", "--data", "{root}/train.json", "--out", "{root}/a_file/x.jsonl"],
     ["--out", "a_file"]),
    ("eval-too-many-thoughts", ["eval", "{root}/run", "--data", "{root}/train.json", "--n-thoughts", "100000",
                                "--out", "{root}/out/eval.jsonl"], ["100000 thoughts", "160 positions"]),
    ("eval-zero-batch", ["eval", "{root}/run", "--data", "{root}/train.json", "--batch-size", "0"],
     ["--batch-size"]),
    ("eval-auto-without-halting-head", ["eval", "{root}/run", "--data", "{root}/train.json", "--n-thoughts", "auto",
                                        "--out", "{root}/out/auto.jsonl"], ["'auto'", "halting head", "method.halting"]),
    ("analyze-thoughts-auto-without-head", ["analyze", "thoughts", "{root}/run", "--data", "{root}/train.json",
                                            "--k", "auto", "--out", "{root}/out/thoughts"], ["halting head"]),
    ("eval-halt-threshold-not-a-probability", ["eval", "{root}/run", "--data", "{root}/train.json",
                                               "--halt-threshold", "1.5"], ["--halt-threshold", "1.5"]),
    ("eval-thoughts-not-a-count", ["eval", "{root}/run", "--data", "{root}/train.json", "--n-thoughts", "many"],
     ["--n-thoughts", "'many'", "'auto'"]),
    ("eval-truncated-weights", ["eval", "{root}/truncated", "--data", "{root}/train.json", "--out",
                                "{root}/out/t.jsonl"], ["epoch_002/model.safetensors"]),
    # train
    ("train-no-data", ["train", "output_dir={root}/new", "model.preset=tiny"], ["data.train"]),
    ("train-missing-data", ["train", "output_dir={root}/new", "data.train={root}/missing.json"], ["missing.json"]),
    ("train-empty-data", ["train", "output_dir={root}/new", "data.train={root}/empty_list.json"],
     ["empty_list.json"]),
    ("train-unknown-method", ["train", "output_dir={root}/new", "data.train={root}/train.json", "method.name=cocnut"],
     ["method.name", "cocnut"]),
    ("train-wrong-type", ["train", "output_dir={root}/new", "data.train={root}/train.json", "train.lr=fast"],
     ["train.lr", "fast"]),
    ("train-unknown-key", ["train", "output_dir={root}/new", "train.learning_rate=1e-3"], ["train.learning_rate"]),
    ("train-config-wrong-type", ["train", "--config", "{root}/bad_types.yaml"], ["train.lr"]),
    ("train-missing-config", ["train", "--config", "{root}/missing.yaml"], ["missing.yaml"]),
    ("train-unwritable-output", ["train", "output_dir={root}/a_file/run", "data.train={root}/train.json",
                                 "model.preset=tiny"], ["output_dir", "a_file"]),
    ("train-negative-lr", ["train", "output_dir={root}/new", "data.train={root}/train.json", "train.lr=-1"],
     ["train.lr"]),
    ("train-codi-zero-latents", ["train", "output_dir={root}/new", "data.train={root}/train.json", "model.preset=tiny",
                                 "method.name=codi", "method.latents=0"], ["method.latents", "0"]),
    ("train-projection-size-zero", ["train", "output_dir={root}/new", "data.train={root}/train.json",
                                    "model.preset=tiny", "method.name=pccot", "method.projection_dim=0"],
     ["method.projection_dim", "0"]),
    ("train-negative-jacobi-iterations", ["train", "output_dir={root}/new", "data.train={root}/train.json",
                                          "model.preset=tiny", "method.name=pccot", "method.jacobi_iterations=-1"],
     ["method.jacobi_iterations"]),
    ("train-step-decoder-without-steps", ["train", "output_dir={root}/new", "data.train={root}/no_steps.json",
                                          "model.preset=tiny", "method.name=codi", "method.step_decoder=true"],
     ["method.step_decoder", "steps"]),
    ("train-step-decoder-on-cot", ["train", "output_dir={root}/new", "data.train={root}/train.json",
                                   "model.preset=tiny", "method.name=cot", "method.step_decoder=true"],
     ["method.step_decoder", "cot"]),
    ("train-prompt-beyond-context", ["train", "output_dir={root}/new", "data.train={root}/train.json",
                                     "model.preset=tiny", "model.n_positions=16", "train.epochs=1"],
     ["model.n_positions", "16"]),
    # data
    ("data-generate-zero", ["data", "generate", "prosqa", "--n", "0", "--out", "{root}/out/g.json"], ["--n"]),
    ("data-generate-unwritable", ["data", "generate", "prosqa", "--n", "2", "--out", "{root}/a_file/g.json"],
     ["--out", "a_file"]),
    ("data-generate-bad-option", ["data", "generate", "prosqa", "--n", "2", "--min-nodes", "30", "--max-nodes",
                                  "10", "--out", "{root}/out/g.json"], ["nodes"]),
    ("data-stats-missing", ["data", "stats", "{root}/missing.json"], ["missing.json"]),
    ("data-stats-empty-file", ["data", "stats", "{root}/empty.json"], ["empty.json"]),
    ("data-stats-empty-question", ["data", "stats", "{root}/empty_question.json"], ["record 0", "question"]),
    ("data-convert-unwritable", ["data", "convert", "{root}/valid.json", "{root}/a_file/v.jsonl"], ["a_file"]),
    ("data-convert-unknown-format", ["data", "convert", "{root}/valid.json", "{root}/out/v.csv"], [".csv"]),
    # tokenizer, model, config
    ("tokenizer-empty-data", ["tokenizer", "train", "--data", "{root}/empty_list.json", "--out", "{root}/out/tok"],
     ["empty_list.json"]),
    ("tokenizer-unwritable", ["tokenizer", "train", "--data", "{root}/train.json", "--out", "{root}/a_file"],
     ["--out", "a_file"]),
    ("model-info-unknown-preset", ["model", "info", "data.train={root}/train.json", "model.preset=huge"], ["huge"]),
    ("model-info-bad-size", ["model", "info", "data.train={root}/train.json", "model.n_embd=100", "model.n_head=3"],
     ["model.n_layer/n_embd/n_head"]),
    ("config-show-unknown-key", ["config", "show", "train.batchsize=4"], ["train.batchsize"]),
    # analyze, report, export, compare, vqvae, demo
    ("analyze-paths-unwritable", ["analyze", "paths", "{root}/run", "--data", "{root}/train.json", "--out",
                                  "{root}/a_file"], ["--out", "a_file"]),
    ("analyze-paths-missing-data", ["analyze", "paths", "{root}/run", "--data", "{root}/missing.json", "--out",
                                    "{root}/out/paths"], ["missing.json"]),
    ("analyze-search-too-many-thoughts", ["analyze", "search", "{root}/run", "--data", "{root}/train.json",
                                          "--n-thoughts", "100000", "--out", "{root}/out/search"],
     ["100000 thoughts", "160 positions"]),
    ("report-missing-run", ["report", "{root}/nowhere", "--out", "{root}/out/report"], ["nowhere"]),
    ("report-unwritable", ["report", "{root}/run", "--out", "{root}/a_file"], ["--out", "a_file"]),
    ("export-unwritable", ["export", "{root}/run", "--out", "{root}/a_file"], ["--out", "a_file"]),
    ("export-run-without-weights", ["export", "{root}/no_weights", "--out", "{root}/out/export"],
     ["no_weights", "model.safetensors"]),
    ("compare-missing-plan", ["compare", "{root}/missing.yaml"], ["missing.yaml"]),
    ("compare-unknown-plan-key", ["compare", "{root}/plan.yaml"], ["colour"]),
    ("compare-runs-without-data", ["compare", "--runs", "a={root}/run"], ["--data"]),
    ("vqvae-train-unknown-key", ["vqvae", "train", "model.codebook=4"], ["model.codebook"]),
    ("vqvae-eval-missing-run", ["vqvae", "eval", "{root}/nowhere", "--data", "{root}/train.json"], ["nowhere"]),
    ("demo-unwritable", ["demo", "--out", "{root}/a_file"], ["--out", "a_file"]),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv, expected", [pytest.param(a, e, id=i) for i, a, e in CASES])
def test_bad_input_gets_one_line_and_damages_nothing(world, argv, expected, capfd):
    before = snapshot(world)
    code = run([a.replace("{root}", str(world)) for a in argv])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for word in expected:
        assert word.replace("{root}", str(world)) in lines[0], lines[0]
    after = snapshot(world)
    changed = {k for k in before if before[k] != after.get(k)}
    assert not changed, f"damaged or removed: {sorted(changed)}"
    assert set(after) == set(before), f"left behind: {sorted(set(after) - set(before))}"


def test_a_problem_file_with_unknown_words_is_evaluated_with_a_warning_naming_them(world, tmp_path, capfd):
    record = tiny_prosqa(1)[0].to_dict()
    save_records([type(tiny_prosqa(1)[0]).from_dict({**record, "question": record["question"] + " Every blicket is."})],
                 tmp_path / "odd.json")
    assert run(["eval", world / "run", "--data", tmp_path / "odd.json", "--out", tmp_path / "odd.jsonl"]) == 0
    err = capfd.readouterr().err
    (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "odd.json: 1 of 1 problems" in warning and "'blicket'" in warning


def test_outputs_that_map_to_no_word_of_the_file_are_marked_and_counted(world, tmp_path, capfd):
    out = tmp_path / "rows.jsonl"
    assert run(["eval", world / "graph_run", "--data", world / "valid.json", "--out", out]) == 0
    captured = capfd.readouterr()
    summary = json.loads(captured.out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["unmapped_outputs"] == sum(bool(r["unmapped"]) for r in rows) > 0
    assert f"{summary['unmapped_outputs']} of 3 outputs hold pieces that name nothing" in captured.err
    for row in rows:
        for piece in row["unmapped"]:
            assert f"<unmapped: {piece}>" in row["generated"]
        assert not re.search(r"#\s*\d+\s*$", row["generated"])  # never a bare node id as the answer


def test_the_table_covers_every_command():
    commands = {argv[0] for _, argv, _ in CASES}
    assert commands >= {"generate", "eval", "train", "data", "tokenizer", "model", "config", "analyze", "report",
                        "export", "compare", "vqvae", "demo"}
    assert len(CASES) >= 50


def test_resuming_skips_a_corrupt_newest_checkpoint_and_says_so(world, tmp_path, capfd):
    run_dir = tmp_path / "truncated"
    shutil.copytree(world / "truncated", run_dir)
    overrides = [f"output_dir={run_dir}", f"data.train={world / 'train.json'}", "model.preset=tiny",
                 "model.n_positions=160", "method.name=coconut", "method.max_latent_stage=1",
                 "method.epochs_per_stage=1", "train.epochs=2", "train.batch_size=4", "train.eval_every=0",
                 "method.max_new_tokens=8"]
    assert run(["train", *overrides]) == 0
    err = capfd.readouterr().err
    assert "warning: skipping checkpoint epoch_002:" in err and "epoch_002/model.safetensors" in err
    assert "resuming from the newest checkpoint that loads: " + str(run_dir / "checkpoints" / "epoch_001") in err
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["corrupt_epoch_002", "epoch_001", "epoch_002"]  # the bad one kept aside, epoch 2 redone
    from latentcot.models import load_checkpoint_model

    load_checkpoint_model(run_dir / "checkpoints" / "epoch_002")
