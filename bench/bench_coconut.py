"""What continuous thoughts cost, and what batching and the KV cache buy at inference.

    PYTHONPATH=src .venv/bin/python bench/bench_coconut.py                 # CPU default, ~3 minutes
    PYTHONPATH=src python bench/bench_coconut.py --device cuda --preset gpt2 --train-batch 64

Writes ``bench/results.json`` (``--out``) and prints three tables:

(a) training step time (forward + backward of ``batch_loss`` + AdamW step) of Coconut with k = 0..6
    thoughts, divided by a cot step on exactly the same tensors. The batch is ProsQA rendered at Coconut
    stage k (``pad_latent_to_max``, so every problem has k thoughts); the "cot" step runs the very same
    input ids, mask and labels without the thought mask, so the thought positions are ordinary tokens
    computed in the one parallel pass. Same shapes, same token count, same loss positions: the ratio is
    the price of the k sequential thought steps alone. Times are the fastest of ``--repeats`` interleaved
    steps (load from other processes only ever adds time); the ratio of medians is kept as well.
(b) generation throughput (problems/s) of ``generate`` (KV cache) at batch 1/8/32/64 against
    ``generate_naive`` (batch 1, no cache: every thought and token re-runs the whole sequence), Coconut
    with 6 thoughts, same model, same problems, same number of written tokens.
(c) latency per problem at batch 1 (cached): Coconut with 6 thoughts against cot.
Generation benchmarks keep the fastest of ``--gen-repeats`` runs.

The model has random weights: time does not depend on the weights, only on how many tokens are written.
So that the random model writes what a correct model would, each problem's ``max_new_tokens`` is set to
the length of the correct continuation (cot: steps + ``### answer`` + EOS; Coconut: ``### answer`` + EOS);
in (b) every problem gets the longest answer's length, so batches do not finish early. Such a model
practically never writes EOS (its prompt never ends in EOS and an untrained GPT-2 mostly repeats its
input), and the mean written tokens are reported so any early stop would show.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers

from latentcot.config import MethodConfig, ModelConfig, TokenizerConfig
from latentcot.data.generators import generate as generate_data
from latentcot.inference import generate, generate_naive
from latentcot.methods import build_method, tokenize_records
from latentcot.models import build_model_and_tokenizer, count_parameters
from latentcot.models.continuous import batch_loss, collate
from latentcot.tokenization import METHOD_TOKENS

HERE = Path(__file__).resolve().parent


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- (a) training steps


def train_step_ratios(model, tokenizer, records, device, batch_size: int, repeats: int, max_thoughts: int):
    cfg = MethodConfig(name="coconut", epochs_per_stage=1, max_latent_stage=max_thoughts, c_thought=1,
                       pad_latent_to_max=True)
    method = build_method(cfg, tokenizer)
    tokenized = tokenize_records(records[:batch_size], tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    model.train()

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        loss, n_tokens = batch_loss(model, batch)[:2]
        (loss / n_tokens).backward()
        optimizer.step()

    rows = []
    for k in range(max_thoughts + 1):
        # epoch k is stage k (one epoch per stage); the rng only matters for uniform_prob, which is 0
        examples = [method.train_example(r, k, random.Random(0)) for r in tokenized]
        assert all(e.n_thoughts == k for e in examples)
        coconut = {name: t.to(device) for name, t in
                   collate(examples, tokenizer.pad_token_id, method.thought_id, align="thoughts").items()}
        cot = {name: t for name, t in coconut.items() if name != "thought_mask"}
        step(coconut)  # warm-up: allocator, kernels
        step(cot)
        coconut_times, cot_times = [], []
        for i in range(repeats):  # interleaved, each first half the time, so drift and load hit both alike
            pair = [(coconut, coconut_times), (cot, cot_times)]
            for batch, times in (pair if i % 2 == 0 else pair[::-1]):
                times.append(timed(lambda: step(batch), device))
        # The fastest repeat estimates the step's own cost: other load on the machine can only add time
        # (the medians are kept too, to show how noisy the run was).
        c, p = min(coconut_times), min(cot_times)
        rows.append({
            "thoughts": k, "problems": len(examples), "seq_len": int(coconut["input_ids"].shape[1]),
            "tokens": int(coconut["attention_mask"].sum()), "coconut_step_s": c, "cot_step_s": p,
            "ratio": c / p, "coconut_tokens_per_s": int(coconut["attention_mask"].sum()) / c,
            "coconut_step_median_s": statistics.median(coconut_times),
            "cot_step_median_s": statistics.median(cot_times),
            "ratio_of_medians": statistics.median(coconut_times) / statistics.median(cot_times),
        })
        print(f"  train k={k}: coconut {c:.3f}s  cot {p:.3f}s  ratio {c / p:.2f}", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- (b), (c) generation


def continuation_lengths(records, tokenizer):
    """Tokens a correct model writes: cot the steps and answer, Coconut (all steps latent) the answer."""
    tokenized = tokenize_records(records, tokenizer)
    return ([sum(map(len, t.steps)) + len(t.answer) for t in tokenized], [len(t.answer) for t in tokenized])


def summarize(generations, seconds: float) -> dict:
    n = len(generations)
    return {
        "problems": n, "seconds": seconds, "problems_per_s": n / seconds,
        "seconds_per_problem": seconds / n,
        "mean_written_tokens": statistics.mean(len(g.token_ids) for g in generations),
        "mean_generated_tokens": statistics.mean(g.generated_tokens for g in generations),
        "mean_forward_passes": statistics.mean(g.forward_passes for g in generations),
    }


def best_of(repeats: int, run):
    """The fastest of ``repeats`` runs of ``run() -> (generations, seconds)``: load elsewhere only adds time."""
    return min((run() for _ in range(repeats)), key=lambda result: result[1])


def wall(device, fn):
    def run():
        sync(device)
        start = time.perf_counter()
        gens = fn()
        sync(device)
        return gens, time.perf_counter() - start
    return run


def throughput(model, tokenizer, records, device, batch_sizes, thoughts: int, repeats: int):
    method = build_method(MethodConfig(name="coconut", max_latent_stage=thoughts, c_thought=1), tokenizer)
    _, answer_lengths = continuation_lengths(records, tokenizer)
    limit = max(answer_lengths)
    generate(model, tokenizer, method, records[:4], batch_size=4, n_thoughts=thoughts, max_new_tokens=limit)
    rows = []
    for batch_size in batch_sizes:
        gens, seconds = best_of(repeats, wall(device, lambda: generate(
            model, tokenizer, method, records, batch_size=batch_size, n_thoughts=thoughts, max_new_tokens=limit)))
        rows.append({"mode": "cached", "batch_size": batch_size, **summarize(gens, seconds)})
        print(f"  generate batch {batch_size}: {rows[-1]['problems_per_s']:.1f} problems/s", file=sys.stderr)
    gens, seconds = best_of(repeats, wall(device, lambda: generate_naive(
        model, tokenizer, method, records, n_thoughts=thoughts, max_new_tokens=limit)))
    rows.append({"mode": "naive (no cache)", "batch_size": 1, **summarize(gens, seconds)})
    print(f"  naive batch 1: {rows[-1]['problems_per_s']:.1f} problems/s", file=sys.stderr)
    base = rows[-1]["problems_per_s"]
    for row in rows:
        row["speedup_vs_naive"] = row["problems_per_s"] / base
    return rows


def latency(model, tokenizer, records, device, thoughts: int, repeats: int):
    cot_lengths, answer_lengths = continuation_lengths(records, tokenizer)
    rows = []
    for name, cfg, lengths, n in (
            ("cot", MethodConfig(name="cot"), cot_lengths, None),
            (f"coconut ({thoughts} thoughts)", MethodConfig(name="coconut", max_latent_stage=thoughts, c_thought=1),
             answer_lengths, thoughts)):
        method = build_method(cfg, tokenizer)
        generate(model, tokenizer, method, records[:1], batch_size=1, n_thoughts=n, max_new_tokens=lengths[0])
        def run():
            gens = [generate(model, tokenizer, method, [record], batch_size=1, n_thoughts=n, max_new_tokens=limit)[0]
                    for record, limit in zip(records, lengths)]  # batch 1, each problem its own correct length
            return gens, sum(g.seconds for g in gens)

        gens, seconds = best_of(repeats, run)
        rows.append({"method": name, **summarize(gens, seconds),
                     "target_tokens": statistics.mean(lengths)})
        print(f"  latency {name}: {seconds / len(gens) * 1000:.1f} ms/problem", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- report


def table(headers, rows) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine_meta(model, device: torch.device, args) -> dict:
    """What a results file says about the model and machine it was measured on."""
    return {"arch": args.arch, "preset": args.preset, "parameters": count_parameters(model), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "transformers": transformers.__version__, "seed": args.seed, "weights": "random init",
            "data": "ProsQA generator, official statistics, word-level tokenizer"}


def write_results(results: dict, out: str | Path, text: str) -> None:
    """The results file (written whole, then renamed into place) and the printed tables."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out)
    print(text)
    print(f"\nwrote {out}")


def report(results) -> str:
    meta = results["meta"]
    out = [f"model: {meta['arch']} preset {meta['preset']} ({meta['parameters']:,} parameters, random weights), "
           f"device {meta['device']}, {meta['threads']} CPU threads, torch {meta['torch']}",
           "", "(a) training step (fwd+bwd+AdamW, fastest of the repeats), "
           "Coconut with k thoughts / cot on the same tensors"]
    out.append(table(["k", "problems", "seq_len", "tokens", "coconut s", "cot s", "ratio", "ratio (medians)"], [
        [r["thoughts"], r["problems"], r["seq_len"], r["tokens"], f"{r['coconut_step_s']:.3f}",
         f"{r['cot_step_s']:.3f}", f"{r['ratio']:.2f}", f"{r['ratio_of_medians']:.2f}"]
        for r in results["train_step"]]))
    out += ["", f"(b) generation throughput, Coconut {meta['gen_thoughts']} thoughts, {meta['gen_problems']} problems"]
    out.append(table(["mode", "batch", "problems/s", "x naive", "written", "fwd passes"], [
        [r["mode"], r["batch_size"], f"{r['problems_per_s']:.1f}", f"{r['speedup_vs_naive']:.1f}",
         f"{r['mean_written_tokens']:.1f}", f"{r['mean_forward_passes']:.1f}"] for r in results["throughput"]]))
    out += ["", "(c) latency per problem at batch 1 (KV cache), correct-length outputs"]
    out.append(table(["method", "ms/problem", "generated tokens", "fwd passes"], [
        [r["method"], f"{r['seconds_per_problem'] * 1000:.1f}", f"{r['mean_generated_tokens']:.1f}",
         f"{r['mean_forward_passes']:.1f}"] for r in results["latency"]]))
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--arch", default="gpt2", choices=("gpt2", "llama"))
    parser.add_argument("--preset", default="cpu-small", help="model size preset (latentcot.models.PRESETS)")
    parser.add_argument("--train-batch", type=int, default=32, help="problems per training step")
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed training steps per configuration (min and median)")
    parser.add_argument("--max-thoughts", type=int, default=6)
    parser.add_argument("--gen-problems", type=int, default=64, help="problems for the generation benchmarks")
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    parser.add_argument("--latency-problems", type=int, default=32)
    parser.add_argument("--gen-repeats", type=int, default=2, help="runs of each generation benchmark (fastest kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results.json"))
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch build sees no GPU")
    torch.manual_seed(args.seed)
    n_records = max(args.train_batch, args.gen_problems, args.latency_problems)
    records = generate_data("prosqa", n_records, args.seed)  # official-size graphs (14 to 28 nodes)
    model, tokenizer = build_model_and_tokenizer(ModelConfig(arch=args.arch, preset=args.preset, n_positions=1024),
                                                 TokenizerConfig(kind="word"), records, METHOD_TOKENS)
    model.to(device)
    started = time.perf_counter()
    results = {"meta": {
        **machine_meta(model, device, args), "gen_thoughts": args.max_thoughts, "gen_problems": args.gen_problems,
        "question_tokens_mean": statistics.mean(len(tokenizer(r.question)["input_ids"]) for r in records),
    }}
    print("(a) training steps", file=sys.stderr)
    # a copy takes the optimizer steps, so the generation benchmarks still run the untouched random model
    results["train_step"] = train_step_ratios(copy.deepcopy(model), tokenizer, records, device, args.train_batch,
                                              args.repeats, args.max_thoughts)
    print("(b) generation throughput", file=sys.stderr)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    results["throughput"] = throughput(model, tokenizer, records[:args.gen_problems], device, batch_sizes,
                                       args.max_thoughts, args.gen_repeats)
    print("(c) latency", file=sys.stderr)
    results["latency"] = latency(model, tokenizer, records[:args.latency_problems], device, args.max_thoughts,
                                 args.gen_repeats)
    results["meta"]["total_seconds"] = time.perf_counter() - started
    write_results(results, args.out, report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
