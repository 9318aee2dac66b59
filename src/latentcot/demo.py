"""The README's main command: a small end-to-end run on built-in defaults.

Until the trainer lands this runs the data pipeline end to end: generate small ProsQA train/valid
sets, write and re-read them, train the tokenizer, build the model, measure the untrained model's
loss, and save model and tokenizer as a checkpoint would.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from .config import Config, ModelConfig, TokenizerConfig, save_config
from .data.generators import generate
from .data.io import load_records, save_records
from .data.stats import dataset_stats
from .models import build_model_and_tokenizer, count_parameters, save_model
from .tokenization import METHOD_TOKENS, record_text

DEMO_TRAIN = 2000
DEMO_VALID = 200
# Smaller graphs than the official ProsQA so CPU training (a later stage of the demo) is feasible.
DEMO_GRAPH = {"min_nodes": 10, "max_nodes": 14}


def run_demo(out: Path, seed: int = 0) -> dict:
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/4] generating ProsQA-style problems ({DEMO_TRAIN} train, {DEMO_VALID} valid, seed {seed})")
    train = generate("prosqa", DEMO_TRAIN, seed, **DEMO_GRAPH)
    valid = generate("prosqa", DEMO_VALID, seed + 1, **DEMO_GRAPH)
    save_records(train, out / "data" / "train.json")
    save_records(valid, out / "data" / "valid.json")
    train = load_records(out / "data" / "train.json")
    valid = load_records(out / "data" / "valid.json")

    print("[2/4] training a word-level tokenizer and building a GPT-2 model (preset cpu-small)")
    cfg = Config(output_dir=str(out), seed=seed, model=ModelConfig(preset="cpu-small"), tokenizer=TokenizerConfig())
    cfg.data.train = str(out / "data" / "train.json")
    cfg.data.valid = str(out / "data" / "valid.json")
    model, tokenizer = build_model_and_tokenizer(cfg.model, cfg.tokenizer, train, METHOD_TOKENS)
    stats = dataset_stats(train, tokenizer)
    print(json.dumps(stats, indent=2))

    print("[3/4] loss of the untrained model on 32 validation problems (should be near ln(vocab))")
    torch.manual_seed(seed)
    texts = [record_text(r) + tokenizer.eos_token for r in valid[:32]]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        loss = model(**batch, labels=labels).loss.item()
    print(f"loss {loss:.3f} vs ln(vocab) {math.log(len(tokenizer)):.3f}; "
          f"{count_parameters(model):,} parameters")

    print(f"[4/4] saving config, model and tokenizer to {out / 'model'}")
    save_config(cfg, out / "config.yaml")
    save_model(model, tokenizer, out / "model")
    summary = {"train": len(train), "valid": len(valid), "vocab": len(tokenizer), "initial_loss": round(loss, 4),
               "parameters": count_parameters(model), "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(summary))
    return summary
