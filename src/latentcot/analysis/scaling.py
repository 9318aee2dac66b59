"""Does sampling latent trajectories buy accuracy, and at what cost? Majority vote against N and against passes.

For each perturbation setting (a noise level or a dropout rate) the problems are answered with N samples
(:func:`latentcot.inference.sampling.generate_samples`), and the vote is read at k = 1, 2, 4, ..., N from the
first k samples of that one run, so the curve costs one run of N, not one per k. The greedy answer is the
reference point: accuracy at one sample without perturbation.
"""

from __future__ import annotations

from typing import Sequence

from ..data.records import Record
from ..evaluation import evaluate
from ..inference.sampling import LatentSampling


def scaling_report(model, tokenizer, method, records: Sequence[Record], settings: Sequence[tuple[float, float]],
                   samples: int, seed: int = 0, batch_size: int = 32, n_thoughts: int | None = None,
                   encoding=None, source: str = "<memory>") -> dict:
    """Greedy accuracy and passes, and per (noise, dropout) setting the vote curve of ``samples`` samples."""
    common = dict(batch_size=batch_size, n_thoughts=n_thoughts, encoding=encoding, source=source)
    greedy = evaluate(model, tokenizer, method, records, **common)
    curves = []
    for noise, dropout in settings:
        result = evaluate(model, tokenizer, method, records, sampling=LatentSampling(samples, noise, dropout, seed),
                          **common)
        curves.append({"latent_noise": noise, "latent_dropout": dropout,
                       "seconds_per_problem": result.seconds_per_problem,
                       "by_samples": result.sampling["by_samples"]})
    return {"n_problems": len(records), "n_thoughts": greedy.n_thoughts, "samples": samples, "seed": seed,
            "greedy": {"accuracy": greedy.accuracy, "forward_passes": greedy.mean_forward_passes,
                       "seconds_per_problem": greedy.seconds_per_problem},
            "curves": curves}


def _label(curve: dict) -> str:
    parts = []
    if curve["latent_noise"]:
        parts.append(f"noise {curve['latent_noise']:g}")
    if curve["latent_dropout"]:
        parts.append(f"dropout {curve['latent_dropout']:g}")
    return ", ".join(parts) or "no perturbation"


def markdown_table(report: dict) -> str:
    """Majority-vote accuracy (pass@k) per setting and k, with the passes each costs."""
    ks = [row["samples"] for row in report["curves"][0]["by_samples"]] if report["curves"] else []
    greedy = report["greedy"]
    lines = [f"greedy: {100 * greedy['accuracy']:.1f}% at {greedy['forward_passes']:.1f} forward passes a problem "
             f"({report['n_problems']} problems); each cell: majority-vote accuracy (pass@k, forward passes)", "",
             "| setting | " + " | ".join(f"k={k}" for k in ks) + " | agreement at k=" + str(ks[-1] if ks else "")
             + " |", "|---" * (len(ks) + 2) + "|"]
    for curve in report["curves"]:
        cells = [f"{100 * r['majority_accuracy']:.1f}% ({100 * r['pass_at_k']:.1f}%, {r['forward_passes']:.1f})"
                 for r in curve["by_samples"]]
        lines.append(f"| {_label(curve)} | " + " | ".join(cells) + f" | {curve['by_samples'][-1]['agreement']:.2f} |")
    return "\n".join(lines) + "\n"


def plot_scaling(report: dict, path: str, title: str = "") -> None:
    """Two panels: accuracy against samples (majority solid, pass@k dashed), and against forward passes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_n, by_passes) = plt.subplots(1, 2, figsize=(10, 4))
    greedy = report["greedy"]
    for curve in report["curves"]:
        ks = [r["samples"] for r in curve["by_samples"]]
        vote = [100 * r["majority_accuracy"] for r in curve["by_samples"]]
        line, = by_n.plot(ks, vote, marker="o", label=f"{_label(curve)}: majority")
        by_n.plot(ks, [100 * r["pass_at_k"] for r in curve["by_samples"]], linestyle="--", color=line.get_color(),
                  label=f"{_label(curve)}: pass@k")
        by_passes.plot([r["forward_passes"] for r in curve["by_samples"]], vote, marker="o", color=line.get_color(),
                       label=_label(curve))
    for ax in (by_n, by_passes):
        ax.axhline(100 * greedy["accuracy"], color="grey", linestyle=":", label="greedy")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    by_passes.plot([greedy["forward_passes"]], [100 * greedy["accuracy"]], marker="*", color="black", markersize=10)
    by_n.set_xscale("log", base=2)
    by_n.set_xlabel("samples per problem (N)")
    by_passes.set_xscale("log")
    by_passes.set_xlabel("forward passes per problem (question pass shared)")
    by_n.legend(fontsize=7)
    by_passes.legend(fontsize=7)
    fig.suptitle(title or f"latent sampling, {report['n_problems']} problems")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
