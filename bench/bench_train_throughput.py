"""Training throughput on CPU: the trainer against a bare loop, and what padding, threads and the
optimizer cost.

    PYTHONPATH=src .venv/bin/python bench/bench_train_throughput.py          # ~4 minutes on 2 cores

Writes ``bench/train_throughput.json`` (``--out``). Everything runs in one process on the same model
size and the same problems (official-size ProsQA in the compact graph encoding, a 2-layer 128-dim
GPT-2, cot rendering, batch 64: the full-size ProsQA recipe of docs/prosqa_full_cpu.md):

(a) ``bare``: forward (``model(input_ids, attention_mask, labels)``), backward, AdamW, on batches that
    were padded in advance; nothing else. ``trainer``: ``Trainer.train_epoch`` on the very same batches
    (rendering, collation, loss, clipping, learning-rate schedule, metrics, all of it). Both start from
    the same weights. Throughput is real (non-pad) tokens per second; the ratio trainer / bare is the
    trainer's overhead. Each variant runs ``--repeats`` times, interleaved, and keeps its fastest run
    (load from other processes only ever adds time).
(b) the padding share of those batches, and the trainer with ``train.bucket_batches`` (problems of
    similar length batched together), in real tokens per second against the unbucketed trainer.
(c) one thread against two (``torch.set_num_threads``), on the bare loop.
(d) AdamW's CPU implementations (for-loop, foreach, fused), on the bare loop.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
import transformers

from latentcot.config import Config, apply_overrides
from latentcot.data.generators import generate as generate_data
from latentcot.models.continuous import collate
from latentcot.training import Trainer

HERE = Path(__file__).resolve().parent


def make_trainer(records, out: Path, *overrides: str) -> Trainer:
    cfg = apply_overrides(Config(), [
        f"output_dir={out}", "data.encoding=graph", "model.arch=gpt2", "model.preset=cpu-small",
        "model.n_positions=256", "method.name=cot", "train.batch_size=64", "train.lr=1e-3",
        "train.progress=false", "train.eval_every=0", "train.log_every=20", "train.resume=false", "seed=0",
        *overrides])
    return Trainer(cfg, train_records=records)


def real_tokens(batches) -> int:
    return sum(len(e.input_ids) for batch in batches for e in batch)


def padded_tokens(batches) -> int:
    return sum(len(batch) * max(len(e.input_ids) for e in batch) for batch in batches)


def bare_epoch(model, tensors, optimizer) -> float:
    start = time.perf_counter()
    model.train()
    for batch in tensors:
        optimizer.zero_grad(set_to_none=True)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                    use_cache=False)
        out.loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def trainer_epoch(trainer: Trainer, initial_state) -> float:
    trainer.model.load_state_dict(initial_state)
    trainer.optimizer = trainer._new_optimizer()
    trainer.state.step, trainer.state.batch, trainer.state.epoch_losses = 0, 0, []
    start = time.perf_counter()
    trainer.train_epoch(0)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=1280, help="problems per epoch (20 batches of 64)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "train_throughput.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    torch.manual_seed(0)
    records = generate_data("prosqa", args.problems, seed=4242)
    tmp = Path(tempfile.mkdtemp(prefix="latentcot_bench_throughput_"))
    plain = make_trainer(records, tmp / "plain")
    bucketed = make_trainer(records, tmp / "bucketed", "train.bucket_batches=20")
    initial = {k: v.clone() for k, v in plain.model.state_dict().items()}
    bucketed.model.load_state_dict(initial)

    batches = plain.global_batches(plain.epoch_examples(0), 0)
    bucket_batches = bucketed.global_batches(bucketed.epoch_examples(0), 0)
    tokens = real_tokens(batches)
    assert tokens == real_tokens(bucket_batches)
    tensors = [collate(b, plain.tokenizer.pad_token_id, None) for b in batches]
    bare_model = plain.model.__class__(plain.model.config)

    def bare(threads: int = torch.get_num_threads(), **adamw) -> float:
        torch.set_num_threads(threads)
        bare_model.load_state_dict(initial)
        optimizer = torch.optim.AdamW(bare_model.parameters(), lr=1e-3, weight_decay=0.01, **adamw)
        try:
            return bare_epoch(bare_model, tensors, optimizer)
        finally:
            torch.set_num_threads(default_threads)

    default_threads = torch.get_num_threads()
    variants = {
        "bare": lambda: bare(),
        "trainer": lambda: trainer_epoch(plain, initial),
        "trainer_bucketed": lambda: trainer_epoch(bucketed, initial),
        "bare_1_thread": lambda: bare(threads=1),
        "bare_adamw_foreach": lambda: bare(foreach=True),
        "bare_adamw_fused": lambda: bare(fused=True),
    }
    bare(), trainer_epoch(plain, initial)  # warm-up: first-call allocations and lazy initialisation
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            times[name].append(run())
    best = {name: min(ts) for name, ts in times.items()}
    rate = {name: tokens / s for name, s in best.items()}
    result = {
        "meta": {"torch": torch.__version__, "transformers": transformers.__version__, "threads": default_threads,
                 "machine": platform.machine(), "problems": args.problems, "batches": len(batches),
                 "real_tokens": tokens, "repeats": args.repeats,
                 "parameters": sum(p.numel() for p in plain.model.parameters()),
                 "total_seconds": round(time.perf_counter() - started, 1)},
        "padding_share": 1 - tokens / padded_tokens(batches),
        "padding_share_bucketed": 1 - tokens / padded_tokens(bucket_batches),
        "seconds": best,
        "real_tokens_per_s": rate,
        "ratios": {
            "trainer_over_bare": rate["trainer"] / rate["bare"],
            "bucketed_trainer_over_trainer": rate["trainer_bucketed"] / rate["trainer"],
            "bucketed_trainer_over_bare": rate["trainer_bucketed"] / rate["bare"],
            "one_thread_over_two": rate["bare_1_thread"] / rate["bare"],
            "adamw_foreach_over_default": rate["bare_adamw_foreach"] / rate["bare"],
            "adamw_fused_over_default": rate["bare_adamw_fused"] / rate["bare"],
        },
        "all_seconds": times,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("padding_share", "padding_share_bucketed", "real_tokens_per_s",
                                             "ratios")}, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
