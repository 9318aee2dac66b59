"""A recipe sweep for official-size ProsQA, run on a lent GPU in one short call (docs/prosqa_full_cpu.md).

Each variant is the CPU plan's pipeline, cot then Coconut initialised from it, with its own model size and
learning rate. All variants run at once (a small model leaves a GPU mostly idle), each within a wall-clock
budget: cot trains until its share of the time is spent, then Coconut runs the whole curriculum
(stages 1-6 and all-latent), its epoch size chosen from the cot phase's measured speed so that it fits.
What it answers: how valid accuracy grows with problems seen and with model size, so that the CPU recipe
can be chosen by measurement instead of guessed.

    python bench/device_prosqa_sweep.py --train data/prosqa_full_train.json --valid ../shared/data/prosqa_valid.json \\
        --out sweep_out --minutes 8

Writes OUT/summary.json (per variant: the cot and Coconut epochs with valid accuracy, problems seen, seconds).
``--plot SUMMARY.json --out FILE.png`` draws valid accuracy against problems seen, per variant.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# name -> model size and learning rates; cpu-small is the CPU plan's model (configs/prosqa/full_cpu.yaml)
VARIANTS = {
    "d128_l2": dict(size=["model.preset=cpu-small"], cot_lr=1e-3, coconut_lr=5e-4),
    "d256_l2": dict(size=["model.n_layer=2", "model.n_embd=256", "model.n_head=8"], cot_lr=1e-3, coconut_lr=5e-4),
    "d256_l4": dict(size=["model.n_layer=4", "model.n_embd=256", "model.n_head=8"], cot_lr=5e-4, coconut_lr=3e-4),
    "d768_l2": dict(size=["model.n_layer=2", "model.n_embd=768", "model.n_head=8"], cot_lr=3e-4, coconut_lr=2e-4),
}
COCONUT_EPOCHS = 8  # stages 1-6 one epoch each, then two all-latent epochs, as in the CPU plan
COCONUT_SLOWDOWN = 3.0  # a Coconut problem costs about this many cot problems (measured on CPU: one pass per thought)


def epochs_of(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    accuracy = {row["epoch"]: row["accuracy"] for row in rows if row.get("type") == "eval"}
    return [{**row, "accuracy": accuracy.get(row["epoch"])} for row in rows if row.get("type") == "epoch"]


def launch(args, name: str, phase: str, overrides: list[str], log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "latentcot", "train", "--config", args.config,
           f"output_dir={args.out}/{name}/{phase}", f"data.train={args.train}", f"data.valid={args.valid}",
           "train.progress=false", "train.save_every_minutes=0.5", "train.keep_checkpoints=1",
           f"train.batch_size={args.batch_size}", f"train.eval_batch_size={args.eval_batch_size}", *overrides]
    log.write(" ".join(cmd) + "\n")
    log.flush()
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def plot(summary_path: str, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = json.loads(Path(summary_path).read_text())
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, run in summary.items():
        if not isinstance(run, dict):
            continue
        seen, xs, ys = 0, [], []
        for phase, size in (("cot", run["cot_epoch_size"]), ("coconut", run["coconut_epoch_size"])):
            for row in run[phase]:
                seen += size
                if row["accuracy"] is not None:
                    xs.append(seen / 1000)
                    ys.append(100 * row["accuracy"])
        line, = ax.plot(xs, ys, marker=".", label=name)
        cot_end = len(run["cot"]) * run["cot_epoch_size"] / 1000
        ax.axvline(cot_end, color=line.get_color(), linestyle=":", linewidth=0.8)
    ax.axhline(50, color="grey", linewidth=0.5)
    ax.set_xlabel("thousands of problems seen (cot, then Coconut after the dotted line)")
    ax.set_ylabel("official valid accuracy (%)")
    ax.set_title("official-size ProsQA: cot then Coconut, by model size (one H100, 8.4 minutes)", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=130)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plot", default="", metavar="SUMMARY.json", help="only draw a finished sweep's curves")
    ap.add_argument("--train")
    ap.add_argument("--valid")
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default="configs/prosqa/full_cpu.yaml")
    ap.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget for the whole sweep")
    ap.add_argument("--cot-share", type=float, default=0.4, help="part of the budget spent on cot")
    ap.add_argument("--epoch-size", type=int, default=25000, help="problems per cot epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--eval-batch-size", type=int, default=150)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    if args.plot:
        plot(args.plot, args.out)
        return
    if not (args.train and args.valid):
        ap.error("--train and --valid are needed to run the sweep")
    names = args.variants.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    budget = args.minutes * 60
    logs = {name: open(out / f"{name}.log", "w") for name in names}

    cot = {name: launch(args, name, "cot", [*VARIANTS[name]["size"], "method.name=cot", "train.epochs=1000",
                                            f"data.epoch_size={args.epoch_size}", f"train.lr={VARIANTS[name]['cot_lr']}",
                                            "train.lr_schedule=constant", "train.warmup_steps=200"], logs[name])
           for name in names}
    cot_deadline = start + budget * args.cot_share
    while time.monotonic() < cot_deadline and any(p.poll() is None for p in cot.values()):
        time.sleep(2)
    coconut = {}
    for name, proc in cot.items():
        stop(proc)
        rows = epochs_of(out / name / "cot")
        if not rows:
            logs[name].write("cot finished no epoch; Coconut not run\n")
            continue
        per_second = args.epoch_size / (sum(r["seconds"] for r in rows) / len(rows))
        remaining = budget - (time.monotonic() - start) - 30  # leave time for the last evaluation
        epoch_size = int(per_second / COCONUT_SLOWDOWN * remaining / COCONUT_EPOCHS)
        epoch_size = max(args.batch_size, epoch_size // args.batch_size * args.batch_size)
        logs[name].write(f"cot: {per_second:.0f} problems/s; Coconut epochs of {epoch_size} problems\n")
        coconut[name] = (epoch_size, launch(args, name, "coconut", [
            *VARIANTS[name]["size"], "method.name=coconut", f"train.init_from={out}/{name}/cot", "method.start_stage=1",
            f"train.epochs={COCONUT_EPOCHS}", f"data.epoch_size={epoch_size}", "train.lr_schedule=constant",
            f"train.lr={VARIANTS[name]['coconut_lr']}", "train.warmup_steps=0"], logs[name]))
    while time.monotonic() < start + budget and any(p.poll() is None for _, p in coconut.values()):
        time.sleep(2)
    for _, proc in coconut.values():
        stop(proc)

    summary = {}
    for name in names:
        cot_rows = epochs_of(out / name / "cot")
        coconut_rows = epochs_of(out / name / "coconut")
        summary[name] = {
            "size": VARIANTS[name]["size"], "cot_lr": VARIANTS[name]["cot_lr"],
            "coconut_lr": VARIANTS[name]["coconut_lr"], "cot_epoch_size": args.epoch_size,
            "coconut_epoch_size": coconut.get(name, (0, None))[0],
            "cot": [{k: r.get(k) for k in ("epoch", "stage", "train_loss", "accuracy", "seconds")} for r in cot_rows],
            "coconut": [{k: r.get(k) for k in ("epoch", "stage", "train_loss", "accuracy", "seconds")}
                        for r in coconut_rows],
        }
        best = lambda rows: max((r.get("accuracy") or 0 for r in rows), default=None)  # noqa: E731
        print(f"{name}: cot best {best(cot_rows)} after {len(cot_rows)} epochs; "
              f"Coconut best {best(coconut_rows)} after {len(coconut_rows)} epochs")
    summary["wall_seconds"] = round(time.monotonic() - start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
