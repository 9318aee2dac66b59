"""Training and generation speed in fp32 and bf16 against the machine's own matmul rate.

    PYTHONPATH=src .venv/bin/python bench/bench_precision.py   # 1.5-2.5 minutes on 2 cores

Writes ``bench/precision.json`` (``--out``): one section per kind of CPU, ``emulated_bf16`` and
``native_bf16``; a run replaces its own kind's section and keeps the other. Official-size ProsQA in the
compact graph encoding, GPT-2 from scratch at 2x128, 4x256 and 2x768 (layers x dims), batch 64, the
trainer's own ``train_step``:

- **matmul rate**: GFLOP/s of one (tokens x d) @ (d x 4d) matmul per dtype, measured in this run; the
  ceiling a training step is set against.
- **trainer**: real tokens/s (padding not counted) over ``--steps`` steps after one warm-up step, for cot and
  for Coconut with 6 thoughts (stage 6, every step latent), and the FLOP/s achieved.
- **the fused GELU** (2x128): cot fp32 with transformers' six-op ``gelu_new`` against the fused tanh GELU
  the model factory now builds (the same function), timed back to back.
- **generation**: batched cached generation (cot, batch 64, 128 problems, EOS masked so each writes 32
  tokens), generated tokens/s and FLOP/s (the prompts' forward passes counted too).

FLOPs are counted, not profiled: a forward pass costs 2 FLOPs per weight of every matmul per position
(attention projections 4d^2, MLP 8d^2 per layer, the LM head V*d) plus the attention scores and their
use, 2 x 2 x d per earlier position per layer (causal: half the square for training, the whole cache for
a generated token); training is 3 forward passes' worth (backward twice the forward). Padded positions
are counted, since the kernels compute them. Utilisation = achieved FLOP/s / matmul rate of the dtype.

On a CPU with native bf16 (AVX512-BF16 or AMX, what ``train.precision=auto`` checks) every variant is timed
in both dtypes and ``bf16_speedup`` is bf16's tokens/s over fp32's for cot, Coconut and generation. On a CPU
without, oneDNN emulates bf16 matmuls, many times slower than fp32: there the bf16 rows are the matmul rate
only, the trainer is not timed in bf16 (one 2x768 step would take minutes).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_coconut import write_results  # noqa: E402
from bench_train_throughput import make_trainer  # noqa: E402
from latentcot.data.generators import generate as generate_data  # noqa: E402
from latentcot.inference import generate  # noqa: E402
from latentcot.runtime import autocast_for, native_bf16  # noqa: E402

SIZES = ((2, 128), (4, 256), (2, 768))
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
GENERATED = 32  # tokens each problem generates in the generation timing (EOS masked)


def matmul_rate(tokens: int, d: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """GFLOP/s of (tokens x d) @ (d x 4d): repeated for about ``seconds``, the fastest call kept."""
    a, b = torch.randn(tokens, d, dtype=dtype), torch.randn(d, 4 * d, dtype=dtype)
    a @ b
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        a @ b
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return 2 * tokens * d * 4 * d / best / 1e9


def forward_flops_per_position(layers: int, d: int, vocab: int, context: float) -> float:
    return 2 * (layers * 12 * d * d + vocab * d) + 4 * layers * d * context


def time_steps(trainer, batches, precision: str) -> dict:
    trainer.autocast = autocast_for(precision, torch.device("cpu"))
    trainer.train_step(batches[0])
    start = time.perf_counter()
    for batch in batches[1:]:
        trainer.train_step(batch)
    seconds = time.perf_counter() - start
    timed = batches[1:]
    real = sum(len(e.input_ids) for b in timed for e in b)
    widths = [max(len(e.input_ids) for e in b) for b in timed]
    cfg = trainer.model.config
    flops = sum(3 * len(b) * w * forward_flops_per_position(cfg.n_layer, cfg.n_embd, cfg.vocab_size, w / 2)
                for b, w in zip(timed, widths))
    return {"tokens_per_s": real / seconds, "seconds_per_step": seconds / len(timed),
            "gflops_per_s": flops / seconds / 1e9, "padding_share": 1 - real / sum(len(b) * w for b, w in
                                                                                   zip(timed, widths))}


def time_generation(trainer, records, precision: str) -> dict:
    from latentcot.data.encodings import build_encoding

    model, cfg = trainer.model, trainer.model.config
    encoded = build_encoding("graph").encode_all(records)
    eos = trainer.tokenizer.eos_token_id

    def never_eos(module, inputs, logits):  # every problem writes GENERATED tokens, whatever the weights
        logits[..., eos] = float("-inf")
        return logits

    hook = model.get_output_embeddings().register_forward_hook(never_eos)
    with autocast_for(precision, torch.device("cpu"))():
        generate(model, trainer.tokenizer, trainer.method, encoded[:64], batch_size=64, max_new_tokens=4)
        start = time.perf_counter()
        out = generate(model, trainer.tokenizer, trainer.method, encoded, batch_size=64, max_new_tokens=GENERATED)
        seconds = time.perf_counter() - start
    hook.remove()
    generated = sum(g.generated_tokens for g in out)
    prompts = [len(trainer.tokenizer(r.question)["input_ids"]) for r in encoded]
    flops = 0.0
    for g, prompt in zip(out, prompts):
        flops += prompt * forward_flops_per_position(cfg.n_layer, cfg.n_embd, cfg.vocab_size, prompt / 2)
        flops += g.generated_tokens * forward_flops_per_position(cfg.n_layer, cfg.n_embd, cfg.vocab_size,
                                                                 prompt + g.generated_tokens / 2)
    return {"generated_tokens_per_s": generated / seconds, "problems_per_s": len(out) / seconds,
            "gflops_per_s": flops / seconds / 1e9}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--out", default=str(HERE / "precision.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cpu = torch.device("cpu")
    native = native_bf16(cpu)
    precisions = ["fp32", "bf16"] if native else ["fp32"]
    records = generate_data("prosqa", 64 * (args.steps + 1), seed=4242)
    gen_records = generate_data("prosqa", 128, seed=4343)
    tmp = Path(tempfile.mkdtemp(prefix="latentcot_bench_precision_"))
    rows = []
    for layers, d in SIZES:
        size = f"{layers}x{d}"
        row = {"size": size, "matmul_gflops": {name: matmul_rate(4096, d, dtype) for name, dtype in DTYPES.items()}}
        shape = [f"model.n_layer={layers}", f"model.n_embd={d}", f"model.n_head={max(2, d // 64)}"]
        cot = make_trainer(records, tmp / f"cot{size}", *shape, "train.bucket_batches=20")
        coconut = make_trainer(records, tmp / f"coconut{size}", *shape, "train.bucket_batches=20",
                               "method.name=coconut", "method.start_stage=6", "method.max_latent_stage=6",
                               "method.pad_latent_to_max=true")
        for precision in precisions:
            rate = row["matmul_gflops"][precision]
            for name, trainer in (("cot", cot), ("coconut_6_thoughts", coconut)):
                timed = time_steps(trainer, trainer.global_batches(trainer.epoch_examples(0), 0), precision)
                timed["utilisation"] = timed["gflops_per_s"] / rate
                row[f"{name}_{precision}"] = timed
            gen = time_generation(cot, gen_records, precision)
            gen["utilisation"] = gen["gflops_per_s"] / rate
            row[f"generation_{precision}"] = gen
        if (layers, d) == SIZES[0]:
            # the reference for the fused GELU: the same model with transformers' six-op "gelu_new"
            from transformers.activations import ACT2FN

            reference = make_trainer(records, tmp / f"gelu_new{size}", *shape, "train.bucket_batches=20")
            for block in reference.model.transformer.h:
                block.mlp.act = ACT2FN["gelu_new"]
            before = time_steps(reference, reference.global_batches(reference.epoch_examples(0), 0), "fp32")
            again = time_steps(cot, cot.global_batches(cot.epoch_examples(0), 0), "fp32")
            row["cot_fp32_gelu_new"] = {**before, "utilisation": before["gflops_per_s"] / row["matmul_gflops"]["fp32"]}
            row["fused_gelu_speedup"] = again["tokens_per_s"] / before["tokens_per_s"]
        if native:
            row["bf16_speedup"] = {
                name: row[f"{name}_bf16"][speed] / row[f"{name}_fp32"][speed]
                for name, speed in (("cot", "tokens_per_s"), ("coconut_6_thoughts", "tokens_per_s"),
                                    ("generation", "generated_tokens_per_s"))}
        rows.append(row)
        print(f"{size}: done ({time.perf_counter() - started:.0f} s)", flush=True)
    section = {"meta": {"cpu": platform.processor() or platform.machine(),
                        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native,
                        "threads": torch.get_num_threads(), "torch": torch.__version__,
                        "transformers": transformers.__version__, "batch": 64, "steps": args.steps,
                        "data": "ProsQA generator, official statistics, graph encoding",
                        "seconds": time.perf_counter() - started},
               "rows": rows}
    results = sections_kept(Path(args.out))
    results[section_name(native)] = section
    write_results(results, args.out, report(section))
    return results


def section_name(native: bool) -> str:
    return "native_bf16" if native else "emulated_bf16"


def sections_kept(out: Path) -> dict:
    """The sections of an earlier results file, so that one kind of CPU's run keeps the other's numbers; a file
    of the older single-machine layout (``meta`` and ``rows`` at the top) becomes its machine's section."""
    if not out.exists():
        return {}
    earlier = json.loads(out.read_text())
    if "meta" in earlier:
        return {section_name(earlier["meta"]["native_bf16"]): earlier}
    return earlier


def report(section) -> str:
    meta = section["meta"]
    lines = [f"CPU capability {meta['cpu_capability']}, native bf16: {meta['native_bf16']}, {meta['threads']} threads",
             "", "| size | matmul fp32 / bf16 GFLOP/s | variant | tokens/s | GFLOP/s | utilisation |",
             "|---|---|---|---|---|---|"]
    for row in section["rows"]:
        rates = row["matmul_gflops"]
        for key, value in row.items():
            if isinstance(value, dict) and "utilisation" in value:
                speed = value.get("tokens_per_s", value.get("generated_tokens_per_s"))
                lines.append(f"| {row['size']} | {rates['fp32']:.0f} / {rates['bf16']:.1f} | {key} | {speed:,.0f} | "
                             f"{value['gflops_per_s']:.1f} | {100 * value['utilisation']:.0f}% |")
    speedups = [row for row in section["rows"] if "bf16_speedup" in row]
    if speedups:
        names = list(speedups[0]["bf16_speedup"])
        lines += ["", "bf16 tokens/s over fp32's:", "", f"| size | {' | '.join(names)} |",
                  "|---|" + "---|" * len(names)]
        lines += [f"| {row['size']} | " + " | ".join(f"{row['bf16_speedup'][n]:.2f}x" for n in names) + " |"
                  for row in speedups]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
