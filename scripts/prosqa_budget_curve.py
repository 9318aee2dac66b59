"""Valid accuracy against problem passes for ProsQA's Coconut runs, and what a log-linear fit extrapolates
(issue 20, docs/prosqa_full_cpu.md, "How far the budget goes").

Each series is a cot run followed by the Coconut run continued from it. Problem passes count both: an
epoch's passes are its optimizer steps times the batch size. A series comes from

- an exported model directory (its ``training.json`` lists the runs behind it, newest first, with each
  epoch's history; the batch size is in its ``config.yaml``), or
- a Coconut run directory (its ``metrics.jsonl``; ``train.init_from`` in its ``config.yaml`` names the cot
  run directory whose epochs come first), or
- the GPU sweep's JSON (``docs/prosqa_gpu_sweep.json``: per variant, the epoch sizes and histories).

Within one run the curriculum shapes the curve (each stage starts lower), so a fit along one run's epochs
says nothing about more budget. The extrapolation is across runs instead: each run's end point (its best
valid accuracy once every step is latent, stage >= 6) against the problem passes it gave each latent stage,
fitted as ``a + b * log10(passes per stage)`` per width, with the points documented elsewhere (``--point``:
our runs whose directories are gone, and Zhu et al.'s) beside the measured ones. Where the slope is at or
below zero, no budget at that width reaches the goal on the evidence so far.

    python scripts/prosqa_budget_curve.py --series "2x128 CPU=models/prosqa-coconut" \\
        --series "4x256 CPU=runs/compare_prosqa_d256_l4/coconut" --gpu-sweep docs/prosqa_gpu_sweep.json \\
        --point "2x128|CPU, 5 epochs a stage|100000|60.7" --point "2x768|Zhu et al., 768 dims|369625|98.8" \\
        --out docs/prosqa_budget_curve
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import yaml

from latentcot.training.metrics import read_metrics

GOAL = 97.0


def _batch_size(config_path: Path) -> int:
    cfg = yaml.safe_load(config_path.read_text())
    try:
        return int(cfg["train"]["batch_size"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{config_path}: no train.batch_size") from error


def _point(passes: float, accuracy: float, stage: int) -> dict[str, Any]:
    return {"passes": passes, "accuracy": 100 * accuracy, "stage": stage}


def _last_passes(points: list[dict[str, Any]]) -> float:
    return points[-1]["passes"] if points else 0.0


def _points_from_history(history: list[dict[str, Any]], steps: int, epochs: int, batch: int,
                         start: float) -> list[dict[str, Any]]:
    per_epoch = steps / max(epochs, 1) * batch
    return [_point(start + per_epoch * (i + 1), h["accuracy"], h.get("stage", 0))
            for i, h in enumerate(history) if h.get("accuracy") is not None]


def from_model(model_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """cot and Coconut points from an exported model's training.json (runs listed newest first)."""
    record = json.loads((model_dir / "training.json").read_text())
    runs = list(reversed(record.get("runs", [])))
    if len(runs) < 2:
        raise ValueError(f"{model_dir}/training.json: expected a cot run and the Coconut run continued from it")
    batch = _batch_size(model_dir / "config.yaml")
    series: dict[str, list[dict[str, Any]]] = {"cot": [], "coconut": []}
    for run in runs:
        start = _last_passes(series["cot"] + series["coconut"])
        points = _points_from_history(run["history"], run["steps"], run["epochs"], batch, start)
        series["coconut" if run["method"] != "cot" else "cot"] += points
    return series


def _run_points(run_dir: Path, start: float) -> list[dict[str, Any]]:
    batch = _batch_size(run_dir / "config.yaml")
    records = read_metrics(run_dir / "metrics.jsonl")
    steps = {r["epoch"]: r["step"] for r in records if r.get("type") == "epoch"}
    return [_point(start + steps[r["epoch"]] * batch, r["accuracy"], r.get("stage", 0))
            for r in records if r.get("type") == "eval" and r.get("epoch") in steps]


def from_run(coconut_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """cot points from the run named by train.init_from, then the Coconut run's own."""
    cfg = yaml.safe_load((coconut_dir / "config.yaml").read_text())
    parent = str(cfg.get("train", {}).get("init_from") or "")
    # init_from may name the run or one of its checkpoints: the run is the nearest folder with metrics
    run_dirs = [d for d in (Path(parent), *Path(parent).parents) if parent and (d / "metrics.jsonl").exists()]
    cot = _run_points(run_dirs[0], 0.0) if run_dirs else []
    return {"cot": cot, "coconut": _run_points(coconut_dir, _last_passes(cot))}


def from_gpu_sweep(path: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    sweep = json.loads(path.read_text())
    out = {}
    for name, variant in sweep.items():
        if not isinstance(variant, dict) or "cot" not in variant:
            continue
        cot = [_point(variant["cot_epoch_size"] * (i + 1), h["accuracy"], 0) for i, h in enumerate(variant["cot"])]
        coconut = [_point(_last_passes(cot) + variant["coconut_epoch_size"] * (i + 1), h["accuracy"], h["stage"])
                   for i, h in enumerate(variant["coconut"])]
        out[f"{width_of(name)} GPU sweep"] = {"cot": cot, "coconut": coconut}
    return out


def end_point(series: dict[str, list[dict[str, Any]]], last_stage: int = 6) -> dict[str, Any] | None:
    """Best valid accuracy once every step is latent, and the passes each latent stage had."""
    latent = [p for p in series["coconut"] if p["stage"] >= last_stage]
    if not latent:
        return None
    first = series["coconut"][0]["passes"]
    return {"passes_per_stage": round(first - _last_passes(series["cot"])),
            "accuracy": max(p["accuracy"] for p in latent)}


def width_of(label: str) -> str:
    """'2x128 CPU' -> '2x128'; the GPU sweep's 'd256_l4 ...' -> '4x256'."""
    head = label.split()[0]
    if head.startswith("d") and "_l" in head:
        dims, layers = head[1:].split("_l")
        return f"{layers}x{dims}"
    return head


def log_linear_fit(points: list[dict[str, Any]], goal: float = GOAL) -> dict[str, Any]:
    """Least squares of accuracy on log10(passes per stage); the passes where the line meets ``goal``."""
    xs = [math.log10(p["passes_per_stage"]) for p in points]
    ys = [p["accuracy"] for p in points]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    fit: dict[str, Any] = {"n_points": n, "best": round(max(ys), 1)}
    if n < 2 or sxx < 0.01:  # less than a quarter of a decade apart: no slope to read
        return {**fit, "points_per_decade": None, "passes_per_stage_to_goal": None}
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    fit["points_per_decade"] = round(slope, 2)
    fit["passes_per_stage_to_goal"] = round(10 ** ((goal - intercept) / slope)) if slope > 0 else None
    return fit


def plot(all_series: dict[str, dict[str, list[dict[str, Any]]]], ends: list[dict[str, Any]], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_end) = plt.subplots(1, 2, figsize=(13, 4.8))
    for i, (label, series) in enumerate(all_series.items()):
        color = f"C{i}"
        if series["cot"]:
            ax.plot([p["passes"] for p in series["cot"]], [p["accuracy"] for p in series["cot"]], ":", color=color,
                    alpha=0.6)
        ax.plot([p["passes"] for p in series["coconut"]], [p["accuracy"] for p in series["coconut"]], "o-",
                color=color, label=label)
    ax.axhline(GOAL, color="k", lw=0.8, ls="--")
    ax.text(ax.get_xlim()[0], GOAL + 0.5, "goal 97%", fontsize=8)
    ax.axhline(50, color="gray", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("problem passes (cot, dotted, then Coconut)")
    ax.set_ylabel("official valid accuracy (%)")
    ax.set_title("ProsQA: valid accuracy against problems seen")
    ax.legend(fontsize=8, loc="lower right")
    widths = sorted({e["width"] for e in ends})
    for i, width in enumerate(widths):
        pts = sorted((e for e in ends if e["width"] == width), key=lambda e: e["passes_per_stage"])
        ax_end.plot([e["passes_per_stage"] for e in pts], [e["accuracy"] for e in pts], "s-", color=f"C{i}",
                    label=width)
        for j, e in enumerate(pts):
            tag = e["label"].removeprefix(width).strip()
            ax_end.annotate(f"{width} {tag}", (e["passes_per_stage"], e["accuracy"]), fontsize=7, color=f"C{i}",
                            textcoords="offset points", xytext=(5, 6 if (i + j) % 2 else -11))
        documented = [e for e in pts if e["source"] == "documented"]
        ax_end.plot([e["passes_per_stage"] for e in documented], [e["accuracy"] for e in documented], "s",
                    color="white", markersize=3)
    ax_end.axhline(GOAL, color="k", lw=0.8, ls="--")
    ax_end.set_xscale("log")
    ax_end.set_xlabel("problem passes per latent stage")
    ax_end.set_ylabel("best valid accuracy, all steps latent (%)")
    ax_end.set_title("End of the curriculum against the budget per stage\n(white centre: documented, not rerun)",
                     fontsize=10)
    ax_end.legend(fontsize=8, loc="lower right", title="layers x dims")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", action="append", default=[], metavar="LABEL=PATH",
                    help="an exported model directory or a Coconut run directory")
    ap.add_argument("--gpu-sweep", type=Path, help="docs/prosqa_gpu_sweep.json")
    ap.add_argument("--point", action="append", default=[], metavar="WIDTH|LABEL|PASSES_PER_STAGE|ACCURACY",
                    help="a documented end point (a run whose directory is gone, or a paper's)")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.png")
    args = ap.parse_args(argv)
    all_series: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for item in args.series:
        label, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--series {item!r}: expected LABEL=PATH")
        path_ = Path(path)
        all_series[label] = from_model(path_) if (path_ / "training.json").exists() else from_run(path_)
    if args.gpu_sweep:
        all_series.update(from_gpu_sweep(args.gpu_sweep))
    ends = []
    for label, series in all_series.items():
        point = end_point(series)
        if point:
            ends.append({"label": label, "width": width_of(label), **point, "source": "measured"})
    for item in args.point:
        try:
            width, label, passes, accuracy = item.split("|")
            ends.append({"label": label, "width": width, "passes_per_stage": int(passes),
                         "accuracy": float(accuracy), "source": "documented"})
        except ValueError as error:
            raise SystemExit(f"--point {item!r}: expected WIDTH|LABEL|PASSES_PER_STAGE|ACCURACY") from error
    fits = {width: log_linear_fit([e for e in ends if e["width"] == width]) for width in sorted({e["width"] for e in ends})}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"goal": GOAL, "fits_by_width": fits, "end_points": ends,
                                                         "series": all_series}, indent=1))
    plot(all_series, ends, args.out)
    for e in ends:
        print(f"{e['width']:>6} {e['label']:<28} {e['passes_per_stage']:>8} passes a stage  {e['accuracy']:.1f}%")
    for width, fit in fits.items():
        print(width, json.dumps(fit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
