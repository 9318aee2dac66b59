"""One GPU call: Zhu, Hao et al.'s ProsQA recipe at 2 layers x 768 dims, in a fixed wall-clock budget.

The recipe (../shared/docs/SPEC.md, "Small models on ProsQA: the training recipe in detail"): GPT-2 from
scratch, 2 layers, 8 heads, 768 dims, dropout 0.1, constant lr 1e-4, batch 256, c_thought 1, uniform_prob
0.1, no optimizer reset, edges re-shuffled and options re-ordered every epoch, node ids relabelled, and the
frontier stage target (one node k+1 edges from the root on a path to the target at stage k). Coconut
from stage 0 (no thoughts) through stage 6, then all-latent epochs. Training problems are generated here
with the official statistics (seeds 3000 and up, never an official file); the epoch is selected on the
validation file. Where it departs from Zhu et al.: bf16 autocast, 6 thoughts at inference for every
problem (``pad_latent_to_max``; they use as many as the problem's steps), and an epoch size set by the
budget, not 25 epochs of 14,785 problems per stage.

On the device (the validation file travels as an ignored path of the working tree)::

    cp ../shared/data/prosqa_valid.json data/            # here, before the call; carry: data/prosqa_valid.json
    python scripts/gpu_prosqa_recipe.py --out "$OUT" --minutes 8 --valid data/prosqa_valid.json

    python scripts/gpu_prosqa_recipe.py --out recipe_out --tiny   # the CPU check, seconds

What comes back under OUT, at most 8 files of at most 16 MiB: ``summary.json`` (per epoch: stage,
problems seen, loss, valid accuracy, seconds; the selected epoch; device and timings), the selected
model's weights in bf16 as safetensors shards under 15 MB, and ``model_files.tar`` with the rest of the
model directory (configs, tokenizer, shard index) and ``metrics.jsonl``. ``--unpack OUT --into DIR``
makes a model directory of them that ``latentcot eval`` loads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from latentcot.config import Config, apply_overrides, to_dict  # noqa: E402
from latentcot.data.generators import generate  # noqa: E402
from latentcot.data.io import load_records, save_records  # noqa: E402

MAX_STAGE = 6
SHARD = "15MB"


def _chunk(job: tuple[int, int, dict]) -> list:
    n, seed, options = job
    return generate("prosqa", n, seed, **options)


def generate_pool(n: int, workers: int, options: dict) -> list:
    per = -(-n // workers)
    jobs = [(min(per, n - i * per), 3000 + i, options) for i in range(workers) if n - i * per > 0]
    if workers == 1:
        return [r for job in jobs for r in _chunk(job)]
    with ProcessPoolExecutor(workers) as pool:
        return [r for part in pool.map(_chunk, jobs) for r in part]


def recipe(args, work: Path, epoch_size: int, epochs: int) -> Config:
    layers, dims = (int(x) for x in args.size.split("x"))
    return apply_overrides(Config(), [
        f"output_dir={work / 'run'}", f"data.train={work / 'train.json'}", f"data.valid={args.valid_path}",
        "data.encoding=graph", "data.shuffle_graph=true", "data.relabel_nodes=true", f"data.epoch_size={epoch_size}",
        "model.arch=gpt2", "model.preset=cpu-small", f"model.n_layer={layers}", f"model.n_embd={dims}",
        f"model.n_head={args.heads}", "model.n_positions=256", "model.dropout=0.1",
        "method.name=coconut", "method.c_thought=1", "method.start_stage=0", f"method.max_latent_stage={MAX_STAGE}",
        f"method.epochs_per_stage={args.epochs_per_stage}", "method.pad_latent_to_max=true", "method.uniform_prob=0.1",
        "method.reset_optimizer=false", "method.stage_target=frontier", "method.max_new_tokens=8",
        f"train.lr={args.lr}", "train.lr_schedule=constant", f"train.batch_size={args.batch_size}",
        f"train.epochs={epochs}", f"train.precision={args.precision}", "train.eval_every=1",
        f"train.eval_batch_size={args.eval_batch_size}", "train.keep_checkpoints=0", "train.resume=false",
        "train.log_every=50", "train.progress=false", f"seed={args.seed}"])


def problems_per_second(args, work: Path, records) -> float:
    """Training speed at the costliest stage (6 thoughts), from a few steps of a throwaway trainer."""
    from latentcot.training import Trainer

    cfg = apply_overrides(recipe(args, work / "calibration", args.batch_size * 4, 1),
                          [f"method.start_stage={MAX_STAGE}", "data.valid="])
    trainer = Trainer(cfg, train_records=records[: args.batch_size * 4])
    batches = trainer.global_batches(trainer.epoch_examples(0), 0)
    trainer.train_step(batches[0])
    _sync(trainer)
    start = time.perf_counter()
    for batch in batches[1:]:
        trainer.train_step(batch)
    _sync(trainer)
    return args.batch_size * (len(batches) - 1) / (time.perf_counter() - start)


def _sync(trainer) -> None:
    import torch

    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)


def save_selected(checkpoint: Path, out: Path, metrics: Path) -> list[str]:
    """The checkpoint's model in bf16 shards under OUT, the rest of its directory packed in one tar."""
    import torch

    from latentcot.models import load_checkpoint_model

    model, tokenizer = load_checkpoint_model(checkpoint)
    staging = out.parent / f".{out.name}_model"
    shutil.rmtree(staging, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(staging, safe_serialization=True, max_shard_size=SHARD)
    tokenizer.save_pretrained(staging)
    shutil.copy2(checkpoint / "config.yaml", staging / "config.yaml")
    shutil.copy2(metrics, staging / "metrics.jsonl")
    kept = []
    with tarfile.open(out / "model_files.tar", "w") as tar:
        for path in sorted(staging.iterdir()):
            if path.suffix == ".safetensors":
                shutil.move(str(path), out / path.name)
                kept.append(path.name)
            else:
                tar.add(path, arcname=path.name)
    shutil.rmtree(staging)
    return kept


def unpack(out: Path, into: Path) -> Path:
    """A model directory (``latentcot eval`` loads it) from what the call brought back."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "model_files.tar") as tar:
        tar.extractall(into, filter="data")
    for shard in out.glob("*.safetensors"):
        shutil.copy2(shard, into / shard.name)
    return into


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="where the summary and the selected model go ($OUT)")
    ap.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget for training and evaluation")
    ap.add_argument("--valid", default="data/prosqa_valid.json", help="selection file (official valid)")
    ap.add_argument("--problems", type=int, default=200_000, help="generated training pool")
    ap.add_argument("--size", default="2x768", help="layers x dims")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--eval-batch-size", type=int, default=300)
    ap.add_argument("--epochs-per-stage", type=int, default=1)
    ap.add_argument("--final-epochs", type=int, default=3, help="all-latent epochs after stage 6")
    ap.add_argument("--precision", default="auto", help="train.precision (auto: bf16 on a GPU that has it)")
    ap.add_argument("--workers", type=int, default=16, help="processes generating the training pool")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="a tiny model and small graphs: the CPU check")
    ap.add_argument("--unpack", default="", metavar="OUT", help="only unpack a finished call's OUT (with --into)")
    ap.add_argument("--into", default="")
    args = ap.parse_args(argv)
    if args.unpack:
        print(unpack(Path(args.unpack), Path(args.into or args.unpack + "_model")))
        return {}
    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="prosqa_recipe_"))
    options = {}
    if args.tiny:
        args.size, args.heads, args.problems, args.batch_size, args.workers = "2x32", 2, 1200, 32, 1
        options = {"min_nodes": 8, "max_nodes": 10}
    records = generate_pool(args.problems, args.workers, options)
    save_records(records, work / "train.json")
    if args.tiny and not Path(args.valid).exists():
        save_records(generate("prosqa", 40, 99, **options), work / "valid.json")
        args.valid = str(work / "valid.json")
    args.valid_path = str(Path(args.valid).resolve())
    load_records(args.valid_path)  # a bad or missing selection file fails now, not after training
    generated = time.monotonic() - started

    epochs = (MAX_STAGE + 1) * args.epochs_per_stage + args.final_epochs
    speed = problems_per_second(args, work, records)
    left = args.minutes * 60 - (time.monotonic() - started)
    evals = 4.0 * epochs  # seconds of evaluation and checkpointing an epoch, a guess kept small on a GPU
    epoch_size = int(max(left - evals, 0) * 0.9 * speed / epochs) // args.batch_size * args.batch_size
    epoch_size = max(args.batch_size, min(epoch_size, len(records)))
    print(f"{speed:.0f} problems/s at 6 thoughts; {epochs} epochs of {epoch_size} problems", flush=True)

    from latentcot.training import train
    from latentcot.training.metrics import read_metrics

    cfg = recipe(args, work, epoch_size, epochs)
    train_started = time.monotonic()
    train(cfg)
    trained = time.monotonic() - train_started
    metrics = read_metrics(work / "run" / "metrics.jsonl")
    accuracy = {m["epoch"]: m["accuracy"] for m in metrics if m["type"] == "eval"}
    # metrics count epochs from 0, checkpoints (epoch_001, ...) from 1
    rows = [{"epoch": m["epoch"] + 1, "stage": m.get("stage"), "train_loss": m.get("train_loss"),
             "problems_seen": (m["epoch"] + 1) * epoch_size, "accuracy": accuracy.get(m["epoch"]),
             "seconds": m.get("seconds")} for m in metrics if m["type"] == "epoch"]
    best = max(rows, key=lambda r: (r["accuracy"] or 0, r["epoch"]))
    checkpoint = work / "run" / "checkpoints" / f"epoch_{best['epoch']:03d}"
    shards = save_selected(checkpoint, out, work / "run" / "metrics.jsonl")
    import torch

    summary = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "size": args.size, "heads": args.heads, "batch_size": args.batch_size, "lr": args.lr,
               "precision": args.precision, "epoch_size": epoch_size, "epochs": rows, "selected_epoch": best["epoch"],
               "selected_accuracy": best["accuracy"], "valid": args.valid, "problems_per_second": speed,
               "seconds": {"generate": round(generated, 1), "train": round(trained, 1),
                           "total": round(time.monotonic() - started, 1)},
               "shards": shards, "config": to_dict(cfg)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: summary[k] for k in ("selected_epoch", "selected_accuracy", "seconds")}))
    return summary


if __name__ == "__main__":
    main()
