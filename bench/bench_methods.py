"""What each latent-reasoning method costs against cot: one training step, and batched generation.

    PYTHONPATH=src .venv/bin/python bench/bench_methods.py                  # CPU default (cpu-small llama)
    PYTHONPATH=src .venv/bin/python bench/bench_methods.py --quick --out methods_quick.json  # smoke run, seconds
    PYTHONPATH=src python bench/bench_methods.py --device cuda --preset gpt2 --train-batch 64

Writes ``bench/methods.json`` (``--out``; a "meta" block says which torch/transformers, device, threads,
platform and model size) and prints one markdown table, one row per method:

- **tokens/batch**: the tokens the step feeds the model, summed over the batch (attention masks): the main
  sequence (cot: question, steps, answer; Coconut: question, ``<bot>``, thoughts, ``<eot>``, answer; CODI and
  PCCoT: the student's sequence), plus CODI/PCCoT's teacher sequence (question, steps, ``<eot>``, answer), plus
  the step decoder's rows (one per latent: a latent position and its step). The split is printed beside the
  total and kept in the JSON. The rows do not see the same tokens as cot: each method renders the SAME
  problems in its own way, and that rendering is part of its cost.
- **train step s**: one training step as the trainer takes it (``method.collate`` -> ``method.batch_loss`` ->
  token mean + each weighted loss term over its own denominator -> backward -> AdamW step over the model's
  and the side modules' parameters). The fastest of ``--repeats`` steps; every method's repeats are
  interleaved with every other's (the order reversed on alternate rounds), so drift and load from other
  processes hit them alike, and load can only ever add time. The medians are kept in the JSON too.
- **x cot (train)**: that time divided by cot's step on the same problems (ratio of the fastest; the ratio of
  medians is in the JSON).
- **gen problems/s**: ``latentcot.inference.generate`` (KV cache) at batch ``--gen-batch`` over
  ``--gen-problems`` problems, the fastest of ``--gen-repeats`` interleaved runs; **x cot (gen)** divides it by
  cot's (above 1: faster than cot). The step decoder is never used at inference, so "+ step decoder" rows
  generate exactly as their base method does (measured anyway: the two rows show the noise).

- **latent probes** (issue 34; ``--probe-samples``): for Coconut, CODI and PCCoT with 6 latents, problems/s of
  greedy generation, of one intervention pass (noise at thought 2 through ``latent_edit``), of N samples with
  latent noise sharing each question's cache (``latentcot.inference.sampling``; a batch holds ``--gen-batch``
  problems, so N x as many rows) and of the same N samples without the sharing (each sample its own row from
  the question on); each also as time over greedy's time. N samples should cost well under N x greedy.

Then one line: PCCoT's claim (Wu et al.: about half the training time of sequential latents) as the ratio
pccot / codi (same latents, same losses, Jacobi iterations instead of one pass per latent) at 6 and at 24
latents, for the training step and for generation.

Every method gets its own deep copy of one random-weight model (latent projections and step decoders do not
leak between methods); generation uses fresh copies that took no training steps. Time depends on the shapes
(how many tokens, passes and latents), not on the weights. So that a random model writes as many tokens as a
correct one, ``max_new_tokens`` is the length of the correct continuation (cot: steps + ``### answer`` +
EOS; the latent methods: ``### answer`` + EOS), the longest over the problems, so batches do not stop early;
the mean written tokens are kept so an early EOS would show. Problems: ProsQA with 6-8 node graphs (the
demo's size), word-level tokenizer, Llama architecture.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
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
from latentcot.inference import generate
from latentcot.methods import build_method, tokenize_records
from latentcot.models import build_model_and_tokenizer, count_parameters
from latentcot.tokenization import METHOD_TOKENS

HERE = Path(__file__).resolve().parent

# Coconut at its final stage: one thought per step, stages of one epoch, epoch 7 is past stage 6, so every
# step is latent and (pad_latent_to_max) every problem has 6 thoughts.
COCONUT = dict(name="coconut", c_thought=1, max_latent_stage=6, pad_latent_to_max=True, epochs_per_stage=1)
COCONUT_EPOCH = 7

# (key, label, config, epoch rendered at)
VARIANTS = [
    ("cot", "cot", MethodConfig(name="cot"), 0),
    ("coconut-6", "coconut (6 thoughts)", MethodConfig(**COCONUT), COCONUT_EPOCH),
    ("codi-6", "codi (6 latents)", MethodConfig(name="codi", latents=6), 0),
    ("pccot-6", "pccot (6 latents, T=3)", MethodConfig(name="pccot", latents=6, jacobi_iterations=3), 0),
    ("coconut-6+sd", "coconut (6) + step decoder", MethodConfig(**COCONUT, step_decoder=True), COCONUT_EPOCH),
    ("codi-6+sd", "codi (6) + step decoder", MethodConfig(name="codi", latents=6, step_decoder=True), 0),
    ("codi-24", "codi (24 latents)", MethodConfig(name="codi", latents=24), 0),
    ("pccot-24", "pccot (24 latents, T=3)", MethodConfig(name="pccot", latents=24, jacobi_iterations=3), 0),
]
PCCOT_PAIRS = [(6, "pccot-6", "codi-6"), (24, "pccot-24", "codi-24")]

FULL = {"preset": "cpu-small", "train_batch": 32, "repeats": 5, "gen_repeats": 2, "gen_batch": 32,
        "gen_problems": 64}
QUICK = {"preset": "tiny", "train_batch": 4, "repeats": 1, "gen_repeats": 1, "gen_batch": 4, "gen_problems": 4}


sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark, when run from elsewhere
from bench_coconut import sync, timed  # noqa: E402


def non_defaults(cfg: MethodConfig) -> dict:
    """The config's fields that differ from MethodConfig's defaults."""
    defaults = dataclasses.asdict(MethodConfig())
    return {k: v for k, v in dataclasses.asdict(cfg).items() if v != defaults[k]}


def rounds(items: list, i: int) -> list:
    """Round ``i`` of an interleaved benchmark: the items in order, reversed on odd rounds."""
    return items if i % 2 == 0 else items[::-1]


# --------------------------------------------------------------------------- training steps


class Trainee:
    """One method on its own copy of the model, with its batch collated once and its own AdamW."""

    def __init__(self, key, label, cfg, epoch, base_model, tokenizer, tokenized, device):
        self.key, self.label = key, label
        self.method = build_method(cfg, tokenizer)
        self.model = copy.deepcopy(base_model)
        self.method.prepare_model(self.model)  # CODI/PCCoT: the latent projection
        self.method.build_side_modules(self.model, None)  # step decoder: a trainable copy of the model
        tokenized = self.method.prepare(tokenized, device=str(device))
        # the rng only matters for uniform_prob / frontier targets, both off here
        self.examples = [self.method.train_example(t, epoch, random.Random(0)) for t in tokenized]
        collated = self.method.collate(self.examples, tokenizer.pad_token_id)
        self.batch = {k: v.to(device) for k, v in collated.items()}
        # The trainer's normalisation: the token loss over the batch's target tokens, each named term over
        # the batch's total of its loss_counts, weighted (a zero weight is not trained).
        self.n_tokens = max(sum(sum(1 for l in e.labels[1:] if l != -100) for e in self.examples), 1)
        self.weights = {k: w for k, w in self.method.loss_weights().items() if w}
        self.totals = {k: max(sum(e.loss_counts.get(k, 0) for e in self.examples), 1) for k in self.weights}
        params = list(self.model.parameters())
        for module in self.method.side_modules.values():
            params += list(module.parameters())
        self.parameters = sum(p.numel() for p in params)
        gpu = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=gpu or None)
        self.times: list[float] = []
        self.terms_seen: list[str] = []

    def step(self) -> None:
        self.model.train()
        for module in self.method.side_modules.values():
            module.train()
        self.optimizer.zero_grad(set_to_none=True)
        parts = self.method.batch_loss(self.model, self.batch)
        loss = parts.lm_sum / self.n_tokens
        for name, value in parts.terms.items():
            if name in self.weights:
                loss = loss + self.weights[name] * value / self.totals[name]
        loss.backward()
        self.optimizer.step()
        self.terms_seen = sorted(parts.terms)

    def shapes(self) -> dict:
        b = self.batch
        main = int(b["attention_mask"].sum())
        teacher = int(b["teacher_attention_mask"].sum()) if "teacher_attention_mask" in b else 0
        decoder = int(b["step_mask"].sum()) if "step_mask" in b else 0
        return {
            "problems": len(self.examples), "seq_len": int(b["input_ids"].shape[1]),
            "thoughts_per_problem": statistics.mean(e.n_thoughts for e in self.examples),
            "main_tokens": main, "teacher_tokens": teacher, "decoder_tokens": decoder,
            "tokens": main + teacher + decoder, "target_tokens": self.n_tokens,
            "decoder_rows": int(b["step_ids"].shape[0]) if "step_ids" in b else 0,
        }


def train_steps(base_model, tokenizer, records, device, repeats: int) -> dict:
    tokenized = tokenize_records(records, tokenizer)
    trainees = [Trainee(key, label, cfg, epoch, base_model, tokenizer, tokenized, device)
                for key, label, cfg, epoch in VARIANTS]
    for t in trainees:  # warm-up: allocator, kernels, AdamW's state
        t.step()
    for i in range(repeats):
        for t in rounds(trainees, i):
            t.times.append(timed(t.step, device))
    cot = trainees[0]
    assert cot.key == "cot"
    rows = {}
    for t in trainees:
        best, median = min(t.times), statistics.median(t.times)
        rows[t.key] = {
            "method": t.label, "config": non_defaults(t.method.cfg),
            **t.shapes(), "loss_terms": t.terms_seen, "loss_weights": t.weights,
            "trained_parameters": t.parameters, "step_s": best, "step_median_s": median,
            "ratio_vs_cot": best / min(cot.times),
            "ratio_of_medians_vs_cot": median / statistics.median(cot.times), "times_s": t.times,
        }
        print(f"  train {t.key}: {best:.4f}s  x cot {rows[t.key]['ratio_vs_cot']:.2f}", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- generation


def generation(base_model, tokenizer, records, device, batch_size: int, repeats: int) -> dict:
    tokenized = tokenize_records(records, tokenizer)
    cot_limit = max(sum(map(len, t.steps)) + len(t.answer) for t in tokenized)  # steps + answer + EOS
    latent_limit = max(len(t.answer) for t in tokenized)  # answer + EOS: every step is latent
    runs = []
    for key, label, cfg, _ in VARIANTS:
        method = build_method(cfg, tokenizer)
        model = copy.deepcopy(base_model)  # untrained copy; the projection is attached, the decoder unused
        method.prepare_model(model)
        model.eval()
        limit = cot_limit if key == "cot" else latent_limit
        runs.append({"key": key, "label": label, "method": method, "model": model, "limit": limit, "best": None})

    def run(r):
        sync(device)
        start = time.perf_counter()
        gens = generate(r["model"], tokenizer, r["method"], records, batch_size=batch_size, max_new_tokens=r["limit"])
        sync(device)
        return gens, time.perf_counter() - start

    for r in runs:  # warm-up
        generate(r["model"], tokenizer, r["method"], records[:min(4, len(records))], batch_size=batch_size,
                 max_new_tokens=r["limit"])
    for i in range(repeats):
        for r in rounds(runs, i):
            gens, seconds = run(r)
            r.setdefault("seconds", []).append(seconds)
            if r["best"] is None or seconds < r["best"][1]:
                r["best"] = (gens, seconds)
    rows = {}
    for r in runs:
        gens, seconds = r["best"]
        n = len(gens)
        rows[r["key"]] = {
            "method": r["label"], "problems": n, "batch_size": batch_size, "max_new_tokens": r["limit"],
            "seconds": seconds, "seconds_median": statistics.median(r["seconds"]), "problems_per_s": n / seconds,
            "mean_thoughts": statistics.mean(g.n_thoughts for g in gens),
            "mean_written_tokens": statistics.mean(len(g.token_ids) for g in gens),
            "mean_generated_tokens": statistics.mean(g.generated_tokens for g in gens),
            "mean_forward_passes": statistics.mean(g.forward_passes for g in gens),
        }
    base = rows["cot"]["problems_per_s"]
    for key, row in rows.items():
        row["ratio_vs_cot"] = row["problems_per_s"] / base
        print(f"  generate {key}: {row['problems_per_s']:.1f} problems/s  x cot {row['ratio_vs_cot']:.2f}",
              file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- latent probes (issue 34)

PROBED = ["coconut-6", "codi-6", "pccot-6"]


def latent_probes(base_model, tokenizer, records, device, batch_size: int, repeats: int, samples: list[int]) -> dict:
    """Per continuous-thought method, problems/s of: greedy generation (the reference), one intervention pass
    (noise at thought 2, through ``latent_edit``), N samples with latent noise sharing each question's cache
    (``generate_samples``, ``batch_size`` problems a batch, so N x as many rows), and the same N samples
    without sharing (every sample its own row from the question on: ``generate`` over the problems repeated
    N times with the same perturbation as ``latent_edit``). Interleaved rounds, fastest kept."""
    from latentcot.analysis.interventions import capture_latents, intervention_edit
    from latentcot.inference.sampling import LatentSampling, generate_samples

    limit = max(len(t.answer) for t in tokenize_records(records, tokenizer))
    jobs = []
    for key, label, cfg, _ in VARIANTS:
        if key not in PROBED:
            continue
        method = build_method(cfg, tokenizer)
        model = copy.deepcopy(base_model)
        method.prepare_model(model)
        model.eval()
        common = dict(n_thoughts=6, max_new_tokens=limit)
        latents = capture_latents(model, tokenizer, method, records, 6, batch_size)
        edit = intervention_edit("noise", 2, latents, model, tokenizer)
        jobs.append((key, "greedy", 1, lambda m=model, me=method, c=common: generate(
            m, tokenizer, me, records, batch_size=batch_size, **c)))
        jobs.append((key, "intervention", 1, lambda m=model, me=method, c=common, e=edit: generate(
            m, tokenizer, me, records, batch_size=batch_size, latent_edit=e, **c)))
        for n in samples:
            sampling = LatentSampling(n, noise=0.3, seed=0)

            def unshared(m, me, c, s=sampling, n=n):
                # the same draws as the shared run (row r of the repeated list is sample r % n of problem r // n),
                # made once per batch as the shared run makes them
                edits: dict[tuple, object] = {}

                def edit(rows, j, latent):
                    key = tuple(rows)
                    if key not in edits:
                        edits[key] = s.edit_rows([(r // n, r % n) for r in rows])
                    return edits[key](j, latent)

                repeated = [r for r in records for _ in range(n)]
                return generate(m, tokenizer, me, repeated, batch_size=batch_size * n, latent_edit=edit, **c)

            jobs.append((key, f"samples-{n}", n, lambda m=model, me=method, c=common, s=sampling, n=n: generate_samples(
                m, tokenizer, me, records, s, batch_size=batch_size * n, **c)))
            jobs.append((key, f"unshared-{n}", n, lambda m=model, me=method, c=common, u=unshared: u(m, me, c)))
    times: dict[tuple[str, str], list[float]] = {}
    for _, _, _, job in jobs:  # warm-up
        job()
    for i in range(repeats):
        for key, kind, _, job in rounds(jobs, i):
            sync(device)
            start = time.perf_counter()
            job()
            sync(device)
            times.setdefault((key, kind), []).append(time.perf_counter() - start)
    out: dict[str, dict] = {}
    for key, kind, n, _ in jobs:
        best = min(times[(key, kind)])
        out.setdefault(key, {})[kind] = {"samples": n, "seconds": best, "problems_per_s": len(records) / best,
                                         "seconds_median": statistics.median(times[(key, kind)])}
    for key, kinds in out.items():
        greedy = kinds["greedy"]["seconds"]
        for kind, row in kinds.items():
            row["time_vs_greedy"] = row["seconds"] / greedy
            print(f"  probe {key} {kind}: {row['problems_per_s']:.1f} problems/s, x{row['time_vs_greedy']:.2f} "
                  "greedy's time", file=sys.stderr)
    return out


# --------------------------------------------------------------------------- report


def pccot_ratios(results: dict) -> dict:
    out = {}
    for latents, pccot, codi in PCCOT_PAIRS:
        train, gen = results["train_step"], results["generation"]
        out[str(latents)] = {
            "train_step_ratio": train[pccot]["step_s"] / train[codi]["step_s"],
            "train_step_ratio_of_medians": train[pccot]["step_median_s"] / train[codi]["step_median_s"],
            "generation_time_ratio": gen[codi]["problems_per_s"] / gen[pccot]["problems_per_s"],
        }
    return out


def report(results: dict) -> str:
    meta = results["meta"]
    lines = [f"model: {meta['arch']} preset {meta['preset']} ({meta['parameters']:,} parameters, random weights), "
             f"device {meta['device']}, {meta['threads']} threads, torch {meta['torch']}, "
             f"train batch {meta['train_batch']}, fastest of {meta['repeats']}; generation batch "
             f"{meta['gen_batch']}, {meta['gen_problems']} problems, fastest of {meta['gen_repeats']}", "",
             "| method | tokens/batch (main+teacher+decoder) | train step s | x cot (train) | gen problems/s "
             "| x cot (gen) |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, _, _, _ in VARIANTS:
        t, g = results["train_step"][key], results["generation"][key]
        split = f"{t['main_tokens']}+{t['teacher_tokens']}+{t['decoder_tokens']}"
        lines.append(f"| {t['method']} | {t['tokens']} ({split}) | {t['step_s']:.4f} | {t['ratio_vs_cot']:.2f} "
                     f"| {g['problems_per_s']:.1f} | {g['ratio_vs_cot']:.2f} |")
    parts = [f"{latents} latents: train step x{r['train_step_ratio']:.2f} "
             f"(medians x{r['train_step_ratio_of_medians']:.2f}), generation time x{r['generation_time_ratio']:.2f}"
             for latents, r in results["pccot_vs_codi"].items()]
    lines += ["", "PCCoT (T=3) / sequential CODI, same latents: " + "; ".join(parts)]
    probes = results.get("latent_probes")
    if probes:
        kinds = list(next(iter(probes.values())))
        lines += ["", f"latent probes (issue 34), batch {meta['gen_batch']} problems, {meta['gen_problems']} problems, "
                  "6 thoughts; each cell: problems/s (time / greedy's time); samples-N: N samples with latent "
                  "noise sharing each question's cache; unshared-N: the same samples, each its own row",
                  "", "| method | " + " | ".join(kinds) + " |", "|---" + "|---:" * len(kinds) + "|"]
        for key, row in probes.items():
            lines.append(f"| {key} | " + " | ".join(f"{row[k]['problems_per_s']:.1f} (x{row[k]['time_vs_greedy']:.2f})"
                                                      for k in kinds) + " |")
    return "\n".join(lines)


def write_results(results: dict, out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--arch", default="llama", choices=("gpt2", "llama"))
    parser.add_argument("--preset", default=None, help=f"model size preset (latentcot.models.PRESETS; "
                        f"default {FULL['preset']}, --quick {QUICK['preset']})")
    parser.add_argument("--train-batch", type=int, default=None, help=f"problems per training step "
                        f"(default {FULL['train_batch']})")
    parser.add_argument("--repeats", type=int, default=None, help=f"timed training steps per method, interleaved "
                        f"(min and median; default {FULL['repeats']})")
    parser.add_argument("--gen-repeats", type=int, default=None, help=f"runs of each generation benchmark "
                        f"(fastest kept; default {FULL['gen_repeats']})")
    parser.add_argument("--gen-batch", type=int, default=None, help=f"generation batch size "
                        f"(default {FULL['gen_batch']})")
    parser.add_argument("--gen-problems", type=int, default=None, help=f"problems generated per run "
                        f"(default {FULL['gen_problems']})")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run: preset tiny, batch 4, "
                        "1 repeat, 4 problems (explicit options still win)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "methods.json"))
    parser.add_argument("--probe-samples", default="4,16", type=lambda t: [int(x) for x in t.split(",") if x],
                        help="sample counts of the latent-probe rows (intervention pass, N-sample generation); "
                             "empty: skip them (default 4,16)")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch build sees no GPU")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    records = generate_data("prosqa", max(args.train_batch, args.gen_problems), args.seed, min_nodes=6, max_nodes=8)
    model, tokenizer = build_model_and_tokenizer(ModelConfig(arch=args.arch, preset=args.preset, n_positions=512),
                                                 TokenizerConfig(kind="word"), records, METHOD_TOKENS)
    model.to(device)
    started = time.perf_counter()
    results = {"meta": {
        "arch": args.arch, "preset": args.preset, "parameters": count_parameters(model), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "platform": platform.platform(), "python": platform.python_version(),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "transformers": transformers.__version__, "seed": args.seed, "weights": "random init",
        "data": "ProsQA generator, 6-8 nodes per graph, word-level tokenizer", "quick": args.quick,
        "train_batch": args.train_batch, "repeats": args.repeats, "gen_batch": args.gen_batch,
        "gen_problems": args.gen_problems, "gen_repeats": args.gen_repeats,
        "question_tokens_mean": statistics.mean(len(tokenizer(r.question)["input_ids"]) for r in records),
    }}
    print("training steps", file=sys.stderr)
    results["train_step"] = train_steps(model, tokenizer, records[:args.train_batch], device, args.repeats)
    print("generation", file=sys.stderr)
    results["generation"] = generation(model, tokenizer, records[:args.gen_problems], device, args.gen_batch,
                                       args.gen_repeats)
    results["pccot_vs_codi"] = pccot_ratios(results)
    if args.probe_samples:
        print("latent probes", file=sys.stderr)
        results["latent_probes"] = latent_probes(model, tokenizer, records[:args.gen_problems], device, args.gen_batch,
                                                 args.gen_repeats, args.probe_samples)
    results["meta"]["total_seconds"] = time.perf_counter() - started
    write_results(results, args.out)
    print(report(results))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
