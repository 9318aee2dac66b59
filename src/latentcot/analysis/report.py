"""``latentcot report``: one self-contained HTML page (and Markdown) about one or more runs.

It gathers what the other commands wrote: training curves from each run's ``metrics.jsonl``, the
comparison table (``comparison.json`` of ``latentcot compare``, or each run's newest ``eval`` summary),
and the analysis outputs (``paths.json``/``paths.png`` of ``analyze paths``, ``search.json``/
``frontier_values.png`` of ``analyze search``). The HTML embeds its images, so it can be mailed or
attached as one file; the Markdown sits beside PNG copies of the same figures.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..errors import MissingFileError
from ..training.metrics import read_metrics

log = logging.getLogger(__name__)

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1040px; margin: 2em auto;
       padding: 0 1.2em; color: #1f2328; }
h1 { font-size: 1.7em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 1.6em; }
.meta { color: #59636e; font-size: .9em; }
table { border-collapse: collapse; margin: .8em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: .35em .8em; text-align: right; }
th { background: #f6f8fa; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption { color: #59636e; font-size: .9em; }
code { background: #f6f8fa; padding: .1em .3em; border-radius: 4px; }
"""


def plot_training_curves(runs: dict[str, list[dict[str, Any]]], path: Path, chain: bool = False,
                         problems_per_step: dict[str, int] | None = None) -> bool:
    """Training loss by step and validation accuracy by epoch, one line per run, with the start of
    each curriculum stage marked (and, dashed, a frontier run's ``stage_accuracy``); False if there is
    nothing to plot. With ``chain``, runs are drawn one
    after the other on shared step and epoch axes (a cot run, then the Coconut run continued from it),
    as one training history. With ``problems_per_step`` (each run's batch size), both panels put the
    training problems seen on the x axis, so runs with other batch or epoch sizes line up by data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(r.get("type") == "train" for rows in runs.values() for r in rows):
        return False
    has_eval = any(r.get("type") == "eval" for rows in runs.values() for r in rows)
    fig, axes = plt.subplots(1, 2 if has_eval else 1, figsize=(12 if has_eval else 6.5, 4), squeeze=False)
    loss_ax, acc_ax = axes[0][0], axes[0][-1]
    step0 = epoch0 = 0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, rows) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        train = [r for r in rows if r.get("type") == "train"]
        evals = [r for r in rows if r.get("type") == "eval"]
        epochs = [r for r in rows if r.get("type") == "epoch"]
        scale = problems_per_step[name] if problems_per_step else 1

        def eval_x(r: dict[str, Any]) -> float:
            return (step0 + r["step"]) * scale if problems_per_step else epoch0 + r["epoch"] + 1

        loss_ax.plot([(step0 + r["step"]) * scale for r in train], [r["loss"] for r in train], color=color,
                     linewidth=1, label=name)
        if evals:
            acc_ax.plot([eval_x(r) for r in evals], [100 * r["accuracy"] for r in evals],
                        marker="o", color=color, label=name)
        staged = [r for r in evals if r.get("stage_accuracy") is not None]
        if staged:  # a method.stage_target=frontier run: its own target's accuracy at each stage
            acc_ax.plot([eval_x(r) for r in staged], [100 * r["stage_accuracy"] for r in staged],
                        marker="x", linestyle="--", color=color, label=f"{name}: stage target")
        for r in evals:
            acc_ax.annotate(f"s{r['stage']}", (eval_x(r), 100 * r["accuracy"]), fontsize=7,
                            textcoords="offset points", xytext=(0, 6), ha="center", color=color)
        previous, start = None, 0
        for r in epochs:
            if r["stage"] != previous:
                loss_ax.axvline((step0 + start) * scale, color=color, alpha=0.25, linewidth=0.8)
                previous = r["stage"]
            start = r["step"]
        if chain and train:
            step0 += train[-1]["step"]
            epoch0 += (epochs[-1]["epoch"] + 1) if epochs else 0
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("training problems seen" if problems_per_step else "optimizer step")
    loss_ax.set_ylabel("training loss (per token)")
    loss_ax.set_title("training loss (thin lines: a new curriculum stage starts)", fontsize=10)
    loss_ax.legend(fontsize=8, frameon=False)
    if has_eval:
        acc_ax.set_xlabel("training problems seen" if problems_per_step else "epoch")
        acc_ax.set_ylabel("validation accuracy (%)")
        acc_ax.set_title("validation accuracy after each epoch (sN: stage N)", fontsize=10)
        acc_ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    from ..data.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130)
    plt.close(fig)
    return True


def _newest_eval_summary(run: Path) -> dict[str, Any] | None:
    found = sorted((run / "eval").glob("*.summary.json"), key=lambda p: p.stat().st_mtime) if (run / "eval").is_dir() else []
    return json.loads(found[-1].read_text()) if found else None


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, str]:
    """The same table as HTML and as Markdown."""
    h = "<table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in header) + "</tr>"
    h += "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    md = "| " + " | ".join(map(str, header)) + " |\n|" + "---|" * len(header) + "\n"
    md += "".join("| " + " | ".join(map(str, row)) + " |\n" for row in rows)
    return h + "</table>", md


def _comparison_rows(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [[r["method"], f"{100 * r['accuracy']:.1f}%", f"{r['mean_generated_tokens']:.1f}",
             f"{r['mean_forward_passes']:.1f}", f"{1000 * r['seconds_per_problem']:.2f}"] for r in rows]


class _Page:
    """Accumulates the HTML and Markdown bodies side by side."""

    def __init__(self, out: Path):
        self.out = out
        self.html: list[str] = []
        self.md: list[str] = []

    def heading(self, text: str) -> None:
        self.html.append(f"<h2>{html.escape(text)}</h2>")
        self.md.append(f"## {text}\n")

    def para(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(text + "\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        h, md = _table(header, rows)
        self.html.append(h)
        self.md.append(md)

    def figure(self, png: Path, caption: str, name: str) -> None:
        target = self.out / name
        if png.resolve() != target.resolve():
            shutil.copyfile(png, target)
        data = base64.b64encode(target.read_bytes()).decode()
        self.html.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        self.md.append(f"![{caption}]({name})\n\n*{caption}*\n")


def write_report(runs: Sequence[str | Path], out: str | Path, compare_dir: str | Path | None = None,
                 analysis_dirs: Sequence[str | Path] = (), title: str = "latentcot report") -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` (with PNGs beside it) into ``out``."""
    from ..data.io import atomic_write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    page = _Page(out)
    run_paths = [Path(r) for r in runs]
    for run in run_paths:
        if not (run / "metrics.jsonl").exists():
            raise MissingFileError(f"{run}: no metrics.jsonl (is this a training run directory?)")

    comparison = None
    if compare_dir is not None:
        path = Path(compare_dir) / "comparison.json"
        if not path.exists():
            raise MissingFileError(f"{path}: no comparison table (run latentcot compare first)")
        comparison = json.loads(path.read_text())
    header = ["method", "accuracy", "generated tokens", "forward passes", "time per problem (ms)"]
    if comparison is not None:
        page.heading("Comparison")
        lead = f"{comparison['title'].rstrip('.')}. " if comparison.get("title") else ""
        page.para(f"{lead}{comparison['n_problems']} problems from "
                  f"{comparison['eval_data']}, greedy decoding at batch size {comparison['batch_size']} on "
                  f"{comparison['device']}; generated tokens count continuous thoughts.")
        page.table(header, _comparison_rows(comparison["rows"]))
    else:
        evals = [(run.name, _newest_eval_summary(run)) for run in run_paths]
        evals = [{"method": name, **s} for name, s in evals if s]
        if evals:
            page.heading("Evaluation")
            page.table(header, _comparison_rows(evals))

    if run_paths:
        page.heading("Training")
        metrics = {run.name: read_metrics(run / "metrics.jsonl") for run in run_paths}
        if plot_training_curves(metrics, out / "training_curves.png"):
            page.figure(out / "training_curves.png", "Training loss per step (log scale) and validation accuracy "
                        "per epoch, from each run's metrics.jsonl.", "training_curves.png")
        rows = []
        for name, lines in metrics.items():
            epochs = [r for r in lines if r.get("type") == "epoch"]
            last_eval = [r for r in lines if r.get("type") == "eval"]
            rows.append([name, len(epochs), epochs[-1]["step"] if epochs else 0,
                         f"{epochs[-1]['train_loss']:.4f}" if epochs else "-",
                         f"{100 * last_eval[-1]['accuracy']:.1f}%" if last_eval else "-",
                         f"{sum(r.get('seconds', 0) for r in epochs) / 60:.1f}"])
        page.table(["run", "epochs", "steps", "final train loss", "last validation accuracy", "training minutes"], rows)

    for directory in map(Path, analysis_dirs):
        paths_json, search_json = directory / "paths.json", directory / "search.json"
        if not paths_json.exists() and not search_json.exists():
            raise MissingFileError(f"{directory}: neither paths.json nor search.json (run latentcot analyze first)")
        if paths_json.exists():
            data = json.loads(paths_json.read_text())
            page.heading(f"Reasoning paths: {data['method']} on {Path(data['data']).name}")
            from .paths import PATH_CLASSES

            rows = []
            # fixed counts in order, then auto (the halting head's choice)
            for k, row in sorted(data["by_k"].items(), key=lambda kv: (kv[0] == "auto", int(kv[0]) if kv[0] != "auto" else 0)):
                n = max(row["n_problems"], 1)
                rows.append([k, f"{100 * row['accuracy']:.1f}%", *(f"{100 * row[c] / n:.1f}%" for c in PATH_CLASSES)])
            page.table(["k", "accuracy", *PATH_CLASSES], rows)
            if (directory / "paths.png").exists():
                page.figure(directory / "paths.png", "Class of each output for k continuous thoughts at inference "
                            "(the Coconut paper's path analysis).", f"paths_{directory.name}.png")
        if search_json.exists():
            data = json.loads(search_json.read_text())
            page.heading(f"Latent search: {Path(data['data']).name}, {data['n_thoughts']} thoughts")
            if "frontier" in data:
                depths = sorted({int(d) for s in data["frontier"].values() for d in s["mass_by_depth"]})
                page.table(["thought", "frontier nodes", "mean value, leads to target", "mean value, other",
                            *(f"mass at depth {d}" for d in depths)],
                           [[t, s["frontier_nodes"], f"{s['mean_value_leads_to_target']:.3f}",
                             f"{s['mean_value_other']:.3f}",
                             *(f"{s['mass_by_depth'].get(str(d), 0.0):.3f}" for d in depths)]
                            for t, s in data["frontier"].items()])
            if (directory / "frontier_values.png").exists():
                page.figure(directory / "frontier_values.png", "Probability each continuous thought gives to the "
                            "names of frontier nodes (exactly i edges from the person at thought i), and the mass "
                            "it puts on the nodes at each depth.",
                            f"frontier_{directory.name}.png")
            tokens = directory / "thought_tokens.jsonl"
            if tokens.exists():
                first = [json.loads(line) for line in tokens.read_text().splitlines()[:3]]
                page.table(["problem", *(f"thought {i + 1}" for i in range(len(first[0]["thoughts"])))] if first else [],
                           [[f"{i + 1} ({ex['answer']})", *(" ".join(f"{tok.strip() or repr(tok)} {p:.2f}"
                                                                       for tok, p in thought[:3])
                                                              for thought in ex["thoughts"])]
                            for i, ex in enumerate(first)])

    sources = ", ".join(str(r) for r in run_paths) or "-"
    body = "\n".join(page.html)
    document = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
                f"<p class='meta'>runs: {html.escape(sources)}</p>{body}</body></html>\n")
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write(html_path, document)
    atomic_write(md_path, f"# {title}\n\nruns: {sources}\n\n" + "\n".join(page.md))
    return html_path, md_path


def add_report_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="one self-contained HTML page (and Markdown) with training curves, "
                                             "the comparison table and analysis plots")
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="training run directories (their metrics.jsonl)")
    p.add_argument("--compare", default=None, metavar="DIR", help="a latentcot compare output directory")
    p.add_argument("--analysis", nargs="*", default=[], metavar="DIR", help="latentcot analyze output directories")
    p.add_argument("--title", default="latentcot report")
    p.add_argument("--out", default="runs/report", metavar="DIR")

    def run(args) -> int:
        from ..data.io import check_writable

        check_writable(args.out, "--out", directory=True)
        html_path, md_path = write_report(args.runs, args.out, args.compare, args.analysis, args.title)
        log.info(f"wrote {html_path} and {md_path}")
        return 0

    p.set_defaults(func=run)
