"""Choose the width of Zhu et al.'s ProsQA recipe by measurement (issue 20, docs/prosqa_full_cpu.md).

Each width trains ``configs/prosqa/recipe_cpu.yaml`` at stage 0 only (after no thought, name one node one
edge from the root on a path to the target: the branch choice that cot gets wrong), for the same wall-clock
budget, start-up included, on this machine. The frontier stage's answer accuracy is near 0 by design, so the
curve is ``stage_accuracy`` on the official valid set after every (short) epoch, against problems seen and
against minutes.

    python scripts/prosqa_width_sweep.py --out runs/width --minutes 12          # runs, one after the other
    python scripts/prosqa_width_sweep.py --out runs/width --plot docs/prosqa_width_sweep   # .json and .png
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

# name -> hidden size, heads, learning rate, epoch size (an eval every ~2 minutes on 2 CPU cores)
WIDTHS = {
    "w128": (128, 4, 1e-3, 12000),
    "w384": (384, 6, 5e-4, 3000),
    "w768": (768, 12, 3e-4, 1000),
}


def train_command(out: Path, name: str) -> list[str]:
    n_embd, n_head, lr, epoch_size = WIDTHS[name]
    return [sys.executable, "-m", "latentcot", "train", "--config", "configs/prosqa/recipe_cpu.yaml",
            f"output_dir={out / name}", f"model.n_embd={n_embd}", f"model.n_head={n_head}", f"train.lr={lr}",
            f"data.epoch_size={epoch_size}", "method.epochs_per_stage=1000", "method.uniform_prob=0",
            "train.epochs=1000", "train.save_every_minutes=0", "train.progress=false"]


def run_all(out: Path, minutes: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in WIDTHS:
        with open(out / f"{name}.log", "w") as log:
            try:
                subprocess.run(train_command(out, name), stdout=log, stderr=subprocess.STDOUT, timeout=60 * minutes)
            except subprocess.TimeoutExpired:
                pass  # the budget is the point: every eval row is already in metrics.jsonl


def curve(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    batch = yaml.safe_load((run / "config.yaml").read_text())["train"]["batch_size"]
    seconds = {r["epoch"]: r["seconds"] for r in rows if r["type"] == "epoch"}  # training time, evals left out
    losses = {r["epoch"]: r["train_loss"] for r in rows if r["type"] == "epoch"}
    evals = [r for r in rows if r["type"] == "eval" and r.get("stage_accuracy") is not None]
    return {
        "problems_seen": [r["step"] * batch for r in evals],
        "train_minutes": [round(sum(s for e, s in seconds.items() if e <= r["epoch"]) / 60, 2) for r in evals],
        "stage_accuracy": [r["stage_accuracy"] for r in evals],
        "train_loss": [round(losses[r["epoch"]], 4) for r in evals],
        "stage_problems": evals[0]["stage_problems"] if evals else 0,
    }


def random_child_baseline(valid: str) -> float:
    """Stage-0 accuracy of naming a child of the root drawn at random: what the curve must beat."""
    from latentcot.data.encodings import build_encoding, graph_stage_targets, parse_graph_question
    from latentcot.data.io import load_records

    shares = []
    for record in build_encoding("graph").encode_all(load_records(valid)):
        edges, _, root = parse_graph_question(record.question)
        children = {child for parent, child in edges if parent == root}
        shares.append(len(graph_stage_targets(record)[0]) / len(children))
    return sum(shares) / len(shares)


def plot(out: Path, prefix: str, valid: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = {name: {"n_embd": WIDTHS[name][0], "lr": WIDTHS[name][2], **curve(out / name)}
               for name in WIDTHS if (out / name / "metrics.jsonl").exists()}
    baseline = random_child_baseline(valid)
    Path(prefix + ".json").write_text(json.dumps({"random_child_baseline": baseline, **summary}, indent=1) + "\n")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name, c in summary.items():
        ys = [100 * a for a in c["stage_accuracy"]]
        axes[0].plot([p / 1000 for p in c["problems_seen"]], ys, marker=".", label=f"2 x {c['n_embd']}")
        axes[1].plot(c["train_minutes"], ys, marker=".", label=f"2 x {c['n_embd']}")
        axes[2].plot([p / 1000 for p in c["problems_seen"]], c["train_loss"], marker=".", label=f"2 x {c['n_embd']}")
    axes[0].set_xlabel("thousands of problems seen")
    axes[1].set_xlabel("minutes of training (2 CPU cores, fp32)")
    axes[0].set_ylabel("stage-0 target right on the official valid set (%)")
    axes[2].set_xlabel("thousands of problems seen")
    axes[2].set_ylabel("training loss (nats a target token)")
    axes[2].set_xscale("log")
    for ax in axes[:2]:
        ax.axhline(100 * baseline, color="grey", linewidth=0.6, linestyle=":")
        ax.set_ylim(0, 100)
    for ax in axes:
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("ProsQA, Zhu et al.'s recipe at stage 0, 12 minutes each: which width learns the branch choice "
                 "(dotted: a random child of the root)", fontsize=10)
    fig.tight_layout()
    fig.savefig(prefix + ".png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/width", help="directory of the runs")
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget of each width")
    parser.add_argument("--valid", default="../shared/data/prosqa_valid.json", help="the valid file the runs use")
    parser.add_argument("--plot", default="", help="write PREFIX.json and PREFIX.png from the runs instead")
    args = parser.parse_args()
    if args.plot:
        plot(Path(args.out), args.plot, args.valid)
    else:
        run_all(Path(args.out), args.minutes)


if __name__ == "__main__":
    main()
