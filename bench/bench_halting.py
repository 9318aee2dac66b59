"""What the halting head (adaptive thinking, ``method.halting``) costs at training and at inference.

    PYTHONPATH=src .venv/bin/python bench/bench_halting.py                # CPU default, about 2 minutes

Writes ``bench/halting.json`` (``--out``) and prints two tables:

(a) training step time (forward + backward of ``batch_loss`` + AdamW step) of Coconut at its last stage
    (``--thoughts`` thoughts a problem, ``pad_latent_to_max``) with the halting head and its loss,
    divided by the same step of the same model without a head, on the same tensors. Interleaved repeats,
    the fastest kept (load from other processes only ever adds time), the ratio of medians too.
(b) generation time of ``--n-thoughts auto`` against a fixed count, same thoughts: the head's threshold
    is 1 (a probability never exceeds it), so every problem thinks exactly ``--thoughts`` thoughts (the
    cap), like the fixed run. This is auto's worst case: its head runs at every decision and each thought is its own step of the
    per-row loop. Batch 1 and ``--batch``; same written tokens (each problem writes its answer's length).

Random weights: time depends on shapes and token counts, not on what the weights say.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_coconut import (  # noqa: E402
    best_of, continuation_lengths, machine_meta, summarize, table, timed, wall, write_results,
)

from latentcot.config import MethodConfig, ModelConfig, TokenizerConfig  # noqa: E402
from latentcot.data.generators import generate as generate_data  # noqa: E402
from latentcot.inference import generate  # noqa: E402
from latentcot.methods import build_method, tokenize_records  # noqa: E402
from latentcot.models import build_model_and_tokenizer  # noqa: E402
from latentcot.models.continuous import batch_loss, collate  # noqa: E402
from latentcot.models.halting import attach_halting_head  # noqa: E402
from latentcot.tokenization import METHOD_TOKENS  # noqa: E402


def train_step_ratio(model, tokenizer, records, device, thoughts: int, repeats: int) -> dict:
    cfg = MethodConfig(name="coconut", max_latent_stage=thoughts, c_thought=1, pad_latent_to_max=True,
                       epochs_per_stage=1, halting=True)
    method = build_method(cfg, tokenizer)
    examples = [method.train_example(r, thoughts, random.Random(0)) for r in tokenize_records(records, tokenizer)]
    tensors = {k: v.to(device) for k, v in collate(examples, tokenizer.pad_token_id, method.thought_id).items()}
    plain_tensors = {k: v for k, v in tensors.items() if k != "halt_targets"}
    plain = copy.deepcopy(model)
    halting = copy.deepcopy(model)
    attach_halting_head(halting)
    decisions = int((tensors["halt_targets"] >= 0).sum())

    def stepper(net, batch):
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            parts = batch_loss(net, batch)
            loss = parts.lm_sum / parts.n_tokens
            if "halt" in parts.terms:
                loss = loss + parts.terms["halt"] / decisions
            loss.backward()
            optimizer.step()
        return step

    runs = {"halting": (stepper(halting, tensors), []), "plain": (stepper(plain, plain_tensors), [])}
    for step, _ in runs.values():
        step()  # warm-up
    for i in range(repeats):
        order = list(runs.values()) if i % 2 == 0 else list(runs.values())[::-1]
        for step, times in order:
            times.append(timed(step, device))
    h, p = min(runs["halting"][1]), min(runs["plain"][1])
    row = {"thoughts": thoughts, "problems": len(examples), "decisions": decisions,
           "tokens": int(tensors["attention_mask"].sum()), "halting_step_s": h, "plain_step_s": p, "ratio": h / p,
           "ratio_of_medians": statistics.median(runs["halting"][1]) / statistics.median(runs["plain"][1])}
    print(f"  train: with head {h:.3f}s  without {p:.3f}s  ratio {h / p:.3f}", file=sys.stderr)
    return row


def generation_ratios(model, tokenizer, records, device, thoughts: int, batch_sizes, repeats: int) -> list[dict]:
    cfg = MethodConfig(name="coconut", max_latent_stage=thoughts, c_thought=1, halting=True, halt_threshold=1.0)
    method = build_method(cfg, tokenizer)
    model = copy.deepcopy(model)
    attach_halting_head(model)
    _, answer_lengths = continuation_lengths(records, tokenizer)
    limit = max(answer_lengths)
    rows = []
    for batch_size in batch_sizes:
        results = {}
        for mode in ("fixed", "auto"):
            n = thoughts if mode == "fixed" else "auto"
            generate(model, tokenizer, method, records[:4], batch_size=4, n_thoughts=n, max_new_tokens=limit)
            gens, seconds = best_of(repeats, wall(device, lambda: generate(
                model, tokenizer, method, records, batch_size=batch_size, n_thoughts=n, max_new_tokens=limit)))
            assert all(g.n_thoughts == thoughts for g in gens)
            results[mode] = summarize(gens, seconds)
        rows.append({"batch_size": batch_size, "fixed": results["fixed"], "auto": results["auto"],
                     "ratio": results["auto"]["seconds"] / results["fixed"]["seconds"]})
        print(f"  generate batch {batch_size}: auto / fixed {rows[-1]['ratio']:.3f}", file=sys.stderr)
    return rows


def report(results) -> str:
    meta = results["meta"]
    t = results["train_step"]
    out = [f"model: {meta['arch']} preset {meta['preset']} ({meta['parameters']:,} parameters, random weights), "
           f"device {meta['device']}, {meta['threads']} CPU threads, torch {meta['torch']}", "",
           f"(a) training step, Coconut last stage ({t['thoughts']} thoughts, {t['problems']} problems), "
           "with the halting head and its loss / without"]
    out.append(table(["decisions", "tokens", "with head s", "without s", "ratio", "ratio (medians)"], [
        [t["decisions"], t["tokens"], f"{t['halting_step_s']:.3f}", f"{t['plain_step_s']:.3f}", f"{t['ratio']:.3f}",
         f"{t['ratio_of_medians']:.3f}"]]))
    out += ["", f"(b) generation, {meta['thoughts']} thoughts every problem: auto (head never stops early) / fixed"]
    out.append(table(["batch", "fixed ms/problem", "auto ms/problem", "ratio", "written"], [
        [r["batch_size"], f"{1000 * r['fixed']['seconds_per_problem']:.2f}",
         f"{1000 * r['auto']['seconds_per_problem']:.2f}", f"{r['ratio']:.3f}",
         f"{r['auto']['mean_written_tokens']:.1f}"] for r in results["generation"]]))
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="gpt2", choices=("gpt2", "llama"))
    parser.add_argument("--preset", default="cpu-small")
    parser.add_argument("--thoughts", type=int, default=6)
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--gen-problems", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,64")
    parser.add_argument("--gen-repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "halting.json"))
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    records = generate_data("prosqa", max(args.train_batch, args.gen_problems), args.seed)
    model, tokenizer = build_model_and_tokenizer(ModelConfig(arch=args.arch, preset=args.preset, n_positions=1024),
                                                 TokenizerConfig(kind="word"), records, METHOD_TOKENS)
    model.to(device)
    started = time.perf_counter()
    results = {"meta": {**machine_meta(model, device, args), "thoughts": args.thoughts}}
    print("(a) training step", file=sys.stderr)
    results["train_step"] = train_step_ratio(model, tokenizer, records[:args.train_batch], device, args.thoughts,
                                             args.repeats)
    print("(b) generation", file=sys.stderr)
    results["generation"] = generation_ratios(model, tokenizer, records[:args.gen_problems], device, args.thoughts,
                                              [int(b) for b in args.batch_sizes.split(",")], args.gen_repeats)
    results["meta"]["total_seconds"] = time.perf_counter() - started
    write_results(results, args.out, report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
