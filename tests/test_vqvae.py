"""Token Assorted's VQ-VAE: chunking, training round trip, checkpoints, codebook metrics, config errors."""

from __future__ import annotations

import argparse
import json
import math
import sys

import pytest
import torch

from latentcot.config import ConfigError
from latentcot.data.generators import generate
from latentcot.data.io import save_records
from latentcot.tokenization import TokenizedRecord, tokenize_record
from latentcot.tokenization import build_tokenizer
from latentcot.vqvae import VQVAEConfig, load_vqvae_config
from latentcot.vqvae.model import chunk_examples, chunk_record, codebook_stats, collate_chunks, pad_chunk

TINY = {"min_nodes": 6, "max_nodes": 8}
# Chunks of 4 tokens cut each trace into several chunks that share a question, so the decoder cannot
# rebuild a chunk from the question alone: the codes have to carry information.
TINY_MODEL = ["model.d_model=32", "model.n_heads=2", "model.n_layers=1", "model.codebook_size=64",
              "model.chunk_len=4"]


def tiny_records(n: int, seed: int = 0):
    return generate("prosqa", n, seed, **TINY)


def vq_available():
    return pytest.importorskip("vector_quantize_pytorch")


def run_cli(argv: list[str]) -> int:
    from latentcot.vqvae.cli import add_vqvae_parser

    parser = argparse.ArgumentParser(prog="latentcot")
    add_vqvae_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# --------------------------------------------------------------------------- (1) chunking


def test_chunks_concatenate_back_to_the_steps():
    record = TokenizedRecord(question=(1, 2), steps=((3, 4, 5), (6, 7), (8,)), answer=(9,))
    assert chunk_record(record, 3) == [(3, 4, 5), (6, 7, 8)]
    assert chunk_record(record, 4) == [(3, 4, 5, 6), (7, 8)]
    assert chunk_record(record, 16) == [(3, 4, 5, 6, 7, 8)]
    assert chunk_record(TokenizedRecord((1,), (), (9,)), 4) == []
    assert pad_chunk((7, 8), 4, pad_id=0) == ([7, 8, 0, 0], [True, True, False, False])
    with pytest.raises(ValueError):
        chunk_record(record, 0)


def test_chunks_of_real_records_are_the_lm_rendering():
    records = tiny_records(12)
    tokenizer = build_tokenizer("word", records)
    for record in records:
        tokenized = tokenize_record(record, tokenizer)
        chunks = chunk_record(tokenized, 5)
        flat = [t for chunk in chunks for t in chunk]
        assert flat == [t for step in tokenized.steps for t in step]
        assert all(len(c) == 5 for c in chunks[:-1]) and 1 <= len(chunks[-1]) <= 5
        assert tokenizer.decode(flat) == "".join(step + "\n" for step in record.steps)

    examples = chunk_examples([tokenize_record(r, tokenizer) for r in records], 5)
    batch = collate_chunks(examples, tokenizer.pad_token_id, 5, max_question_len=10)
    assert batch["chunk_ids"].shape == batch["chunk_mask"].shape == (len(examples), 5)
    assert batch["chunk_mask"].sum().item() == sum(len(ex.chunk) for ex in examples)
    padded = batch["chunk_ids"][~batch["chunk_mask"]]
    assert (padded == tokenizer.pad_token_id).all()
    # A long question keeps its end, where the question proper is asked.
    assert batch["question_ids"].shape[1] == 10
    assert batch["question_ids"][0].tolist() == list(examples[0].question[-10:])


def test_tokenizer_is_the_lms(tmp_path):
    from latentcot.config import apply_overrides
    from latentcot.tokenization import METHOD_TOKENS, add_method_tokens
    from latentcot.runs import STATE_FILE, checkpoint_dir
    from latentcot.vqvae.io import vqvae_tokenizer

    records = tiny_records(12)
    lm_tokenizer = build_tokenizer("word", records)
    add_method_tokens(lm_tokenizer, METHOD_TOKENS)  # what the LM trainer gives every vocabulary
    assert vqvae_tokenizer(VQVAEConfig(), records).get_vocab() == lm_tokenizer.get_vocab()
    # An LM run directory: its newest checkpoint's tokenizer is taken.
    lm_tokenizer.add_tokens(["<latent_0>"])
    newest = checkpoint_dir(tmp_path / "lm_run", 2)
    lm_tokenizer.save_pretrained(newest)
    (newest / STATE_FILE).write_text("{}")
    cfg = apply_overrides(VQVAEConfig(), [f"tokenizer.path={tmp_path / 'lm_run'}"])
    assert vqvae_tokenizer(cfg, []).get_vocab() == lm_tokenizer.get_vocab()
    with pytest.raises(ValueError, match="tokenizer.path"):
        vqvae_tokenizer(apply_overrides(VQVAEConfig(), ["tokenizer.kind=pretrained"]), records)


# --------------------------------------------------------------------------- (2) training round trip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run through the CLI, shared by the tests that need a trained model."""
    vq_available()
    root = tmp_path_factory.mktemp("vqvae")
    records = tiny_records(24)
    save_records(records, root / "train.json")
    config = root / "vqvae.yaml"
    config.write_text(f"output_dir: {root / 'run'}\ndata:\n  train: {root / 'train.json'}\n"
                      "train:\n  lr: 3.0e-3\n  batch_size: 16\n  epochs: 60\n  keep_checkpoints: 1\n"
                      "  progress: false\n  eval_every: 0\n")
    assert run_cli(["vqvae", "train", "--config", str(config), *TINY_MODEL]) == 0
    return root, records


def test_tiny_vqvae_reconstructs_its_training_chunks(trained, capsys):
    root, records = trained
    out = root / "metrics.json"
    assert run_cli(["vqvae", "eval", str(root / "run"), "--data", str(root / "train.json"), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads(out.read_text())
    assert printed["chunks"] == metrics["chunks"] > 0
    assert metrics["chunk_accuracy"] >= 0.9, metrics
    assert metrics["token_accuracy"] >= metrics["chunk_accuracy"]
    tokenizer = build_tokenizer("word", records)
    longest = max(len(chunk_record(tokenize_record(r, tokenizer), 4)) for r in records)
    assert metrics["codes_used"] >= longest, "fewer codes than chunks in one trace: the codebook collapsed"
    lines = [json.loads(x) for x in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"train", "epoch"} <= {line["type"] for line in lines}


def test_codes_decode_to_the_trace_text(trained):
    from latentcot.vqvae import decode_codes_to_text, encode_record, load_vqvae

    root, records = trained
    model, tokenizer = load_vqvae(root / "run")
    hits = 0
    for record in records:
        codes = encode_record(model, tokenizer, record)
        assert len(codes) == len(chunk_record(tokenize_record(record, tokenizer), model.chunk_len))
        # The last chunk's tail past the trace's end is filler (the decoder is not trained on padding).
        hits += decode_codes_to_text(model, tokenizer, codes, record.question).startswith(
            "".join(step + "\n" for step in record.steps))
    assert hits >= 0.8 * len(records)


# --------------------------------------------------------------------------- (3) checkpoints


def _tiny_setup(codes_per_chunk: int = 1):
    vq_available()
    from latentcot.config import apply_overrides
    from latentcot.vqvae.io import build_vqvae, vqvae_tokenizer

    records = tiny_records(8)
    cfg = apply_overrides(VQVAEConfig(), TINY_MODEL + [f"model.codes_per_chunk={codes_per_chunk}"])
    tokenizer = vqvae_tokenizer(cfg, records)
    examples = chunk_examples([tokenize_record(r, tokenizer) for r in records], cfg.model.chunk_len)
    torch.manual_seed(0)
    model = build_vqvae(cfg.model, tokenizer, batch_size=8)
    batch = collate_chunks(examples, tokenizer.pad_token_id, cfg.model.chunk_len, cfg.model.max_question_len)
    return model, tokenizer, batch


@pytest.mark.parametrize("codes_per_chunk", [1, 2])
def test_saved_vqvae_gives_identical_codes_and_logits(tmp_path, codes_per_chunk):
    from latentcot.vqvae import load_vqvae, save_vqvae

    model, tokenizer, batch = _tiny_setup(codes_per_chunk)
    model.train()
    model(**batch)["loss"].backward()  # k-means init and one moving-average update change the codebook
    model.eval()
    codes = model.encode(**batch)
    logits = model.decode(codes, batch["question_ids"], batch["question_mask"])
    save_vqvae(tmp_path / "saved", model, tokenizer)
    loaded, loaded_tokenizer = load_vqvae(tmp_path / "saved")
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    assert torch.equal(loaded.encode(**batch), codes)
    assert torch.equal(loaded.decode(codes, batch["question_ids"], batch["question_mask"]), logits)
    assert codes.shape == (batch["chunk_ids"].shape[0], codes_per_chunk) and codes.dtype == torch.long
    assert logits.shape == (*batch["chunk_ids"].shape, len(tokenizer))


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    vq_available()
    from latentcot.config import apply_overrides
    from latentcot.vqvae import load_vqvae, train_vqvae

    records = tiny_records(12)
    base = TINY_MODEL + ["train.batch_size=4", "train.progress=false", "train.eval_every=1"]
    straight = train_vqvae(apply_overrides(VQVAEConfig(), base + [f"output_dir={tmp_path / 'a'}", "train.epochs=2"]),
                           records, records[:4])
    train_vqvae(apply_overrides(VQVAEConfig(), base + [f"output_dir={tmp_path / 'b'}", "train.epochs=1"]),
                records, records[:4])
    resumed = train_vqvae(apply_overrides(VQVAEConfig(), base + [f"output_dir={tmp_path / 'b'}", "train.epochs=2"]),
                          records, records[:4])
    assert resumed.name == straight.name == "epoch_002"
    a, _ = load_vqvae(straight)
    b, _ = load_vqvae(resumed)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert json.loads((resumed / "state.json").read_text())["history"] == json.loads(
        (straight / "state.json").read_text())["history"]


def test_sigterm_stops_after_the_epochs_checkpoint_and_the_run_resumes(tmp_path, monkeypatch):
    vq_available()
    import os
    import signal

    from latentcot.config import apply_overrides
    from latentcot.runs import TrainingStopped, list_checkpoints
    from latentcot.vqvae import load_vqvae, train_vqvae
    from latentcot.vqvae import train as vqvae_train

    records = tiny_records(12)
    base = TINY_MODEL + ["train.batch_size=4", "train.progress=false", "train.epochs=3"]
    straight = train_vqvae(apply_overrides(VQVAEConfig(), base + [f"output_dir={tmp_path / 'a'}"]), records)
    real_save = vqvae_train.save_vqvae

    def save_then_terminate(*args, **kwargs):
        saved = real_save(*args, **kwargs)
        if saved.name == "epoch_001":
            os.kill(os.getpid(), signal.SIGTERM)  # as if sent while the first epoch was saving
        return saved

    monkeypatch.setattr(vqvae_train, "save_vqvae", save_then_terminate)
    cfg = apply_overrides(VQVAEConfig(), base + [f"output_dir={tmp_path / 'b'}"])
    with pytest.raises(TrainingStopped) as stop:
        train_vqvae(cfg, records)
    assert stop.value.exit_code == 143 and stop.value.checkpoint.name == "epoch_001"
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["epoch_001"]
    monkeypatch.undo()
    resumed = train_vqvae(cfg, records)
    a, _ = load_vqvae(straight)
    b, _ = load_vqvae(resumed)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


# --------------------------------------------------------------------------- (4) codebook metrics


def test_codebook_stats_by_hand():
    # Counts 2, 1, 0, 1 of 4 codes: p = 1/2, 1/4, 1/4, entropy = 1.5 ln 2, perplexity 2 ** 1.5.
    stats = codebook_stats([0, 0, 1, 3], 4)
    assert stats["codebook_perplexity"] == pytest.approx(2 ** 1.5)
    assert stats["codes_used"] == 3 and stats["codebook_usage"] == pytest.approx(0.75)
    assert codebook_stats(torch.tensor([[5], [5], [5]]), 8)["codebook_perplexity"] == pytest.approx(1.0)
    uniform = codebook_stats(list(range(8)) * 3, 8)
    assert uniform["codebook_perplexity"] == pytest.approx(8.0) and uniform["codebook_usage"] == 1.0
    assert codebook_stats([], 8) == {"codebook_perplexity": 0.0, "codes_used": 0, "codebook_usage": 0.0}
    assert math.isclose(codebook_stats([1, 2], 2)["codebook_perplexity"], 2.0)


# --------------------------------------------------------------------------- (5) config errors, missing extra


@pytest.mark.parametrize("override,message", [
    ("model.codebok_size=3", "unknown config key 'model.codebok_size'; did you mean 'model.codebook_size'?"),
    ("model.arch=llama", "unknown config key 'model.arch'"),
    ("train.lrr=1", "did you mean 'train.lr'?"),
    ("chunk_len=8", "did you mean 'model.chunk_len'?"),
    ("model.codebook_size=many", "config key 'model.codebook_size': expected an integer"),
    ("model.n_heads=3", "does not divide model.d_model=128"),
    ("model.chunk_len=0", "config key 'model.chunk_len': must be at least 1"),
])
def test_bad_config_names_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_vqvae_config(None, [override])
    assert message in str(info.value)
    assert "model.preset" not in str(info.value)  # no hint from the language model's config


def test_bad_key_in_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  codebook_size: 32\n  arch: llama\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'model.arch'"):
        load_vqvae_config(path)
    path.write_text("model:\n  codebook_size: 32\ntrain:\n  epochs: 3\n")
    cfg = load_vqvae_config(path, ["train.lr=3e-4"])
    assert (cfg.model.codebook_size, cfg.train.epochs, cfg.train.lr) == (32, 3, pytest.approx(3e-4))


def test_missing_extra_names_it(monkeypatch):
    from latentcot.vqvae.model import VQVAE

    monkeypatch.setitem(sys.modules, "vector_quantize_pytorch", None)
    with pytest.raises(RuntimeError, match=r"latentcot\[assorted\]"):
        VQVAE(vocab_size=10, pad_id=0)


def test_shipped_vqvae_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[1] / "configs" / "vqvae").glob("*.yaml"))
    assert configs
    for path in configs:
        cfg = load_vqvae_config(path)
        assert cfg.data.train and cfg.output_dir.startswith("runs/")
