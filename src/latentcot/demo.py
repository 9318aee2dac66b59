"""The README's main command: a small end-to-end comparison on CPU.

It generates a ProsQA-style data set with smaller graphs than the official one (so a CPU can learn it
in minutes), trains no_cot and cot from scratch, continues the cot model with the Coconut curriculum
(as the paper does for GSM8k: start from the cot checkpoint at stage 1), evaluates all three on held-out
problems and prints accuracy, generated tokens and time per problem.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import Config, apply_overrides
from .data.generators import generate
from .data.io import atomic_write, check_writable, save_records
from .runs import latest_checkpoint
from .training import train

log = logging.getLogger(__name__)


@dataclass
class DemoSettings:
    n_train: int = 12000  # fresh problems are cheap; more of them beats more epochs (4,000 got memorised)
    n_valid: int = 300
    min_nodes: int = 6
    max_nodes: int = 8
    arch: str = "llama"  # learned the lookups faster than GPT-2 at this size in our trials
    preset: str = "cpu-small"
    lr: float = 2e-3
    batch_size: int = 32
    cot_epochs: int = 4
    no_cot_epochs: int = 4
    coconut_stages: int = 3  # stages 1..3 replace every step of these 2-4 step problems
    epochs_per_stage: int = 1
    final_epochs: int = 2  # epochs past the last stage, all text steps gone
    precision: str = "auto"  # train.precision; auto is fp32 on a CPU, bf16 on a GPU that has it


def _base_overrides(s: DemoSettings, seed: int) -> list[str]:
    return [f"seed={seed}", f"model.arch={s.arch}", f"model.preset={s.preset}", "model.n_positions=256",
            f"train.lr={s.lr}", "train.lr_schedule=cosine", "train.warmup_steps=50",
            f"train.batch_size={s.batch_size}", "train.eval_every=0", "train.keep_checkpoints=1",
            "train.log_every=5", "train.weight_decay=0.01", f"train.precision={s.precision}"]


def _run(name: str, overrides: list[str], out: Path, train_records, valid_records) -> Path:
    cfg = apply_overrides(Config(), [f"output_dir={out / name}", *overrides])
    log.info(f"\n== training {name} ({cfg.train.epochs} epochs) ==")
    train(cfg, train_records=train_records, valid_records=valid_records)
    return latest_checkpoint(out / name)


def run_demo(out: Path, seed: int = 0, settings: DemoSettings | None = None) -> dict:
    from .evaluation import evaluate
    from .inference import load_run
    from .runtime import autocast_for

    s = settings or DemoSettings()
    start = time.perf_counter()
    check_writable(out, "--out", directory=True)
    out.mkdir(parents=True, exist_ok=True)
    graph = {"min_nodes": s.min_nodes, "max_nodes": s.max_nodes}
    log.info(f"generating ProsQA-style problems: {s.n_train} train, {s.n_valid} valid, "
             f"{s.min_nodes}-{s.max_nodes} nodes per graph (seed {seed})")
    train_records = generate("prosqa", s.n_train, seed, **graph)
    valid_records = generate("prosqa", s.n_valid, seed + 10_000, **graph)
    save_records(train_records, out / "data" / "train.json")
    save_records(valid_records, out / "data" / "valid.json")

    base = _base_overrides(s, seed)
    runs = {}
    runs["no_cot"] = _run("no_cot", base + ["method.name=no_cot", f"train.epochs={s.no_cot_epochs}"],
                          out, train_records, valid_records)
    runs["cot"] = _run("cot", base + ["method.name=cot", f"train.epochs={s.cot_epochs}"],
                       out, train_records, valid_records)
    coconut_epochs = s.coconut_stages * s.epochs_per_stage + s.final_epochs
    runs["coconut"] = _run("coconut", base + [
        "method.name=coconut", f"train.init_from={runs['cot']}", "method.start_stage=1",
        f"method.epochs_per_stage={s.epochs_per_stage}", f"method.max_latent_stage={s.coconut_stages}",
        f"train.epochs={coconut_epochs}"], out, train_records, valid_records)

    rows = []
    for name, checkpoint in runs.items():
        cfg, model, tokenizer, method = load_run(checkpoint)
        # evaluated in the precision it trained in
        with autocast_for(s.precision, next(model.parameters()).device, "--precision")():
            result = evaluate(model, tokenizer, method, valid_records, batch_size=64, progress=True)
        result.write_jsonl(out / name / "eval_valid.jsonl")
        rows.append({"method": name, **result.summary()})
    lines = [
        "| method | accuracy | generated tokens | forward passes | ms per problem |",
        "|---|---|---|---|---|",
        *(f"| {r['method']} | {100 * r['accuracy']:.1f}% | {r['mean_generated_tokens']:.1f} | "
          f"{r['mean_forward_passes']:.1f} | {1000 * r['seconds_per_problem']:.2f} |" for r in rows),
    ]
    table = "\n".join(lines)
    summary = {"settings": asdict(s), "seed": seed, "results": rows,
               "minutes": round((time.perf_counter() - start) / 60, 2)}
    atomic_write(out / "results.md", table + "\n")
    atomic_write(out / "results.json", json.dumps(summary, indent=2) + "\n")
    print(f"\nProsQA-style validation set ({s.n_valid} problems, chance = 50%), batch-64 greedy decoding:\n")
    print(table)
    log.info(f"\ntotal {summary['minutes']} min; results in {out}/results.md and results.json")
    return summary
