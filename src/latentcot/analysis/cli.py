"""``latentcot analyze paths|steps|search|curves|interventions|scaling``: analyses of a saved run on a problem file."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import MissingFileError, UsageError

log = logging.getLogger(__name__)


def _parse_ks(text: str) -> list[int | str]:
    """``0..6``, ``0,2,4``, ``1..6,auto`` or ``auto``: fixed counts, and ``auto`` for the halting head."""
    from ..evaluation.cli import thought_count

    ks: list[int | str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if ".." in part:
            lo, _, hi = part.partition("..")
            first, last = thought_count(lo, "--k"), thought_count(hi, "--k")
            if not isinstance(first, int) or not isinstance(last, int):
                raise UsageError(f"--k: a range takes counts, got {part!r}")
            ks.extend(range(first, last + 1))
        else:
            ks.append(thought_count(part, "--k"))
    if not ks:
        raise UsageError(f"--k: expected a range like 0..6, a list like 0,2,4 and/or auto, got {text!r}")
    return list(dict.fromkeys(ks))


def _check_auto(ks, model) -> None:
    """Before any evaluation: ``auto`` needs the model's halting head."""
    if "auto" in ks:
        from ..models.halting import require_halting_head

        require_halting_head(model)


def _load(args: argparse.Namespace):
    from ..data.encodings import run_encoding
    from ..data.io import check_writable, load_records
    from ..inference import load_run
    from ..runtime import pick_device

    check_writable(args.out, "--out", directory=True)
    records = load_records(args.data)
    if args.max_problems:
        records = records[:args.max_problems]
    if not records:
        raise UsageError(f"{args.data}: no problems")
    cfg, model, tokenizer, method = load_run(args.run_dir)
    model.to(pick_device(args.device))
    return records, model, tokenizer, method, run_encoding(cfg.data)


def run_paths(args: argparse.Namespace) -> dict:
    from ..data.io import atomic_write
    from ..evaluation import evaluate
    from ..methods import ContinuousThoughts
    from .paths import PATH_CLASSES, classify_path, plot_path_classes

    records, model, tokenizer, method, encoding = _load(args)
    out = Path(args.out)
    thinks = isinstance(method, ContinuousThoughts)
    ks = _parse_ks(args.k) if thinks else [0]
    _check_auto(ks, model)
    table: dict[int | str, dict] = {}
    for k in ks:
        result = evaluate(model, tokenizer, method, records, batch_size=args.batch_size,
                          n_thoughts=k if thinks else None, progress=True,
                          encoding=encoding)
        counts = {c: 0 for c in PATH_CLASSES}
        for row, record in zip(result.rows, records):
            row["path_class"] = classify_path(record, row["generated"])
            counts[row["path_class"]] += 1
        result.write_jsonl(out / f"paths_k{k}.jsonl")
        table[k] = {**counts, "accuracy": result.accuracy, "mean_thoughts": result.mean_thoughts,
                    "n_problems": len(records)}
        shares = ", ".join(f"{c} {100 * counts[c] / len(records):.1f}%" for c in PATH_CLASSES if counts[c])
        log.info(f"k={k}: accuracy {100 * result.accuracy:.1f}%; {shares}")
    title = f"{method.name} on {Path(args.data).name} ({len(records)} problems)"
    plot_path_classes(table, str(out / "paths.png"), title=title)
    atomic_write(out / "paths.json", json.dumps({"run": str(args.run_dir), "data": args.data, "method": method.name,
                                                 "by_k": table}, indent=2) + "\n")
    log.info(f"wrote {out / 'paths.png'} and {out / 'paths.json'}")
    return table


def run_search(args: argparse.Namespace) -> dict:
    from ..data.io import atomic_write
    from ..evaluation.cli import thought_count
    from ..inference.generate import AUTO, generate, wants_auto
    from .search import frontier_values, plot_frontier_values, summarize, thought_probabilities, top_tokens

    records, model, tokenizer, method, encoding = _load(args)
    out = Path(args.out)
    k = thought_count(args.n_thoughts)
    if k is None:
        k = AUTO if wants_auto(method, None) else method.default_thoughts()
    encoded = encoding.encode_all(records, args.data)
    counts = k
    if k == AUTO:
        # the halting head's count for each problem: only the thinking matters, so one written token
        counts = [g.n_thoughts for g in generate(model, tokenizer, method, encoded, batch_size=args.batch_size,
                                                 n_thoughts=AUTO, max_new_tokens=1)]
    probs = thought_probabilities(model, tokenizer, method, encoded, counts, batch_size=args.batch_size)
    tops = [{"question": r.question, "answer": r.answer, "thoughts": top_tokens(p, tokenizer, args.top)}
            for r, p in zip(records, probs)]
    atomic_write(out / "thought_tokens.jsonl", "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tops))
    report: dict = {"run": str(args.run_dir), "data": args.data, "n_thoughts": k, "n_problems": len(records)}
    has_graph = all("edges" in r.extra for r in records)
    if has_graph:
        rows = [dict(row, problem=i) for i, (r, p) in enumerate(zip(records, probs))
                for row in frontier_values(r, p, tokenizer, encoding.node_texts(r))]
        atomic_write(out / "frontier_values.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        report["frontier"] = summarize(rows)
        plot_frontier_values(rows, str(out / "frontier_values.png"), thoughts=(1, 2),
                             title=f"{method.name}: values of frontier nodes ({len(records)} problems)")
        for t, s in report["frontier"].items():
            depths = ", ".join(f"depth {d}: {m:.3f}" for d, m in s["mass_by_depth"].items())
            log.info(f"thought {t}: {s['frontier_nodes']} frontier nodes; mean value {s['mean_value_leads_to_target']:.3f} "
                     f"on those leading to the target, {s['mean_value_other']:.3f} on the others; mass {depths}; "
                     f"within {t} hops {s['mass_within_hops']:.3f}, beyond {s['mass_beyond_hops']:.3f}, "
                     f"unreachable {s['mass_unreachable']:.3f}")
    for example in tops[:3]:
        shown = " | ".join(", ".join(f"{tok!r} {p:.2f}" for tok, p in thought[:3]) for thought in example["thoughts"])
        log.info(f"top tokens per thought: {shown}")
    atomic_write(out / "search.json", json.dumps(report, indent=2) + "\n")
    log.info(f"wrote {out}/thought_tokens.jsonl" + (", frontier_values.jsonl/.png" if has_graph else "") + ", search.json")
    return report


def run_steps(args: argparse.Namespace) -> dict:
    from ..data.io import atomic_write
    from ..evaluation import evaluate
    from ..evaluation.cli import thought_count
    from ..methods import ContinuousThoughts
    from .steps import compare_steps, plot_steps, summarize

    records, model, tokenizer, method, encoding = _load(args)
    out = Path(args.out)
    result = evaluate(model, tokenizer, method, records, batch_size=args.batch_size,
                      n_thoughts=thought_count(args.n_thoughts), progress=True, encoding=encoding)
    rows = []
    for row, record in zip(result.rows, records):
        # The thoughts stand for whole steps (Coconut: c_thought each); the written chain resumes after them.
        offset = min(row.get("n_thoughts", 0) // method.thoughts_per_step(), len(record.steps)) \
            if isinstance(method, ContinuousThoughts) else 0
        rows.append({**row, **compare_steps(record, row["generated"], row["correct"], offset)})
    summary = summarize(rows)
    atomic_write(out / "steps.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write(out / "steps.json", json.dumps(summary, indent=2) + "\n")
    plot_steps(summary, out / "steps.png")
    right = ", ".join(f"{v:.1%}" for v in summary["step_right_by_index"])
    log.info(f"accuracy {summary['accuracy']:.1%}; chain right {summary['chain_right']:.1%}; written step right by "
             f"index: {right}; wrong chain but right answer {summary['wrong_chain_right_answer']:.1%}; right chain "
             f"but wrong answer {summary['right_chain_wrong_answer']:.1%}")
    log.info(f"wrote {out}/steps.jsonl, steps.json, steps.png")
    return summary


def run_thoughts(args: argparse.Namespace) -> dict:
    from ..data.io import atomic_write
    from ..evaluation import evaluate
    from ..evaluation.cli import halt_threshold
    from ..methods import continuous_thoughts
    from .thoughts import best_fixed, plot_thought_counts, thought_table_row

    records, model, tokenizer, method, encoding = _load(args)
    method = continuous_thoughts(method, "analyze thoughts")
    threshold = halt_threshold(args.halt_threshold)
    out = Path(args.out)
    ks = _parse_ks(args.k)
    _check_auto(ks, model)
    table: dict[str, dict] = {}
    for k in ks:
        result = evaluate(model, tokenizer, method, records, batch_size=args.batch_size, n_thoughts=k,
                          progress=True, encoding=encoding, halt_threshold=threshold)
        result.write_jsonl(out / f"thoughts_k{k}.jsonl")
        table[str(k)] = row = thought_table_row(result)
        depths = ", ".join(f"{d} steps {100 * v['accuracy']:.1f}% / {v['mean_thoughts']:.2f}"
                           for d, v in row["by_steps"].items())
        log.info(f"k={k}: accuracy {100 * row['accuracy']:.1f}%, mean thoughts {row['mean_thoughts']:.2f} ({depths})")
    depths = sorted({len(r.steps) for r in records})
    report = {"run": str(args.run_dir), "data": args.data, "method": method.name,
              "halt_threshold": method.cfg.halt_threshold if threshold is None else threshold,
              "best_fixed": best_fixed(table), "by_setting": table,
              # the thoughts after which the head was trained to stop, for a problem of each depth
              "needed_thoughts": {str(d): method.needed_thoughts(d) for d in depths}}
    plot_thought_counts(table, report["needed_thoughts"], out / "thoughts.png",
                        title=f"{method.name} on {Path(args.data).name} ({len(records)} problems)")
    atomic_write(out / "thoughts.json", json.dumps(report, indent=2) + "\n")
    log.info(f"wrote {out}/thoughts.json, thoughts.png and thoughts_k*.jsonl")
    return report


def run_interventions_cli(args: argparse.Namespace) -> dict:
    from ..data.io import atomic_write
    from ..evaluation.cli import thought_count
    from ..methods.assorted import Assorted
    from .code_interventions import CODE_INTERVENTIONS, run_code_interventions
    from .interventions import INTERVENTIONS, markdown_table, plot_flip_rates, run_interventions

    k = thought_count(args.n_thoughts)
    if k == "auto":
        raise UsageError("--n-thoughts: interventions need a fixed thought count, not auto")
    records, model, tokenizer, method, encoding = _load(args)
    # Token Assorted's latents are the codes it writes; every other method's are its continuous thoughts
    codes = isinstance(method, Assorted)
    known = CODE_INTERVENTIONS if codes else INTERVENTIONS
    kinds = [x.strip() for x in (args.kinds or ",".join(known)).split(",") if x.strip()]
    unknown = [x for x in kinds if x not in known]
    if unknown or not kinds:
        raise UsageError(f"--kinds: unknown {unknown or kinds} for {method.name}; choose from {', '.join(known)}")
    out = Path(args.out)
    encoded = encoding.encode_all(records, args.data)
    if codes:
        report = run_code_interventions(model, tokenizer, method, encoded, k, kinds, args.batch_size, args.seed)
    else:
        report = run_interventions(model, tokenizer, method, encoded, k, kinds, args.batch_size, args.seed)
    report.update(run=str(args.run_dir), data=args.data, method=method.name)
    atomic_write(out / "interventions.json", json.dumps(report, indent=2) + "\n")
    table = markdown_table(report)
    atomic_write(out / "interventions.md", table)
    every = report.get("all_mean") or report["all_replaced"]
    plot_flip_rates(report, str(out / "interventions.png"),
                    title=f"{method.name} on {Path(args.data).name}: untouched {100 * report['accuracy']:.1f}%, "
                          f"all {'codes random' if codes else 'latents mean'} {100 * every['accuracy']:.1f}%")
    print(table, end="")
    log.info(f"wrote {out}/interventions.json, interventions.md, interventions.png")
    return report


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected numbers separated by commas, got {text!r}") from None


def run_scaling_cli(args: argparse.Namespace) -> dict:
    from ..data.io import atomic_write
    from ..evaluation.cli import thought_count
    from ..inference.sampling import LatentSampling, check_sampling_call
    from .scaling import markdown_table, plot_scaling, scaling_report

    settings = [(s, 0.0) for s in _floats(args.latent_noise, "--latent-noise")]
    settings += [(0.0, p) for p in _floats(args.latent_dropout, "--latent-dropout")]
    if not settings:
        raise UsageError("give --latent-noise and/or --latent-dropout: the perturbations to sample with")
    samplings = [LatentSampling(args.samples, noise, dropout, args.seed) for noise, dropout in settings]
    k = thought_count(args.n_thoughts)
    if k == "auto":
        raise UsageError("--n-thoughts: sampling latent trajectories needs a fixed thought count, not auto")
    records, model, tokenizer, method, encoding = _load(args)
    for sampling in samplings:  # refused before any work
        check_sampling_call(method, sampling, k)
    out = Path(args.out)
    report = scaling_report(model, tokenizer, method, records, settings, args.samples, args.seed, args.batch_size,
                            k, encoding, args.data)
    report.update(run=str(args.run_dir), data=args.data, method=method.name)
    atomic_write(out / "scaling.json", json.dumps(report, indent=2) + "\n")
    table = markdown_table(report)
    atomic_write(out / "scaling.md", table)
    plot_scaling(report, str(out / "scaling.png"), title=f"{method.name} on {Path(args.data).name}")
    print(table, end="")
    log.info(f"wrote {out}/scaling.json, scaling.md, scaling.png")
    return report


def _run_batch_size(run: Path) -> int:
    """Problems per optimizer step of a run, from the config it saved."""
    from ..config import load_run_config

    if not (run / "config.yaml").exists():
        raise MissingFileError(f"{run}: no config.yaml to read train.batch_size from (--x problems)")
    return load_run_config(run / "config.yaml").train.batch_size


def _curve_rows(spec: str, by_problems: bool) -> list[dict]:
    """One line's metrics: a run directory, or runs joined by ``+`` (a run, then the run continued from it
    with ``train.init_from``) drawn as one history, steps and epochs offset past the runs before. With
    ``by_problems`` each step is counted in problems (x the run's ``train.batch_size``)."""
    from ..training.metrics import read_metrics

    pieces = [Path(spec)] if Path(spec).is_dir() else [Path(p) for p in spec.split("+")]
    rows, step0, epoch0 = [], 0, 0
    for run in pieces:
        if not (run / "metrics.jsonl").exists():
            raise MissingFileError(f"{run}: no metrics.jsonl (is this a run directory?)")
        scale = _run_batch_size(run) if by_problems else 1
        mine = [dict(r, **{"step": step0 + r["step"] * scale} if "step" in r else {},
                     **{"epoch": epoch0 + r["epoch"]} if "epoch" in r else {})
                for r in read_metrics(run / "metrics.jsonl")]
        rows += mine
        step0 = max((r["step"] for r in mine if "step" in r), default=step0)
        epoch0 = max((r["epoch"] + 1 for r in mine if "epoch" in r), default=epoch0)
    return rows


def run_curves(args: argparse.Namespace) -> int:
    from .report import plot_training_curves

    runs = {}
    for item in args.runs:
        name, sep, path = item.partition("=")
        spec = path if sep else item
        runs[name if sep else Path(spec.split("+")[-1]).name] = _curve_rows(spec, args.x == "problems")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the rows already count problems: one "step" is one problem
    plot_training_curves(runs, out, chain=args.chain,
                         problems_per_step={name: 1 for name in runs} if args.x == "problems" else None)
    log.info(f"wrote {out}")
    return 0


def add_analyze_parser(subparsers) -> None:
    analyze = subparsers.add_parser("analyze", help="what the latent reasoning does (path classes, latent search)")
    sub = analyze.add_subparsers(dest="analyze_command", required=True)

    def common(p: argparse.ArgumentParser, out: str) -> None:
        p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (its newest checkpoint) or checkpoint")
        p.add_argument("--data", required=True, metavar="FILE", help="problem file")
        p.add_argument("--out", default=out, metavar="DIR", help=f"output directory (default {out})")
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--max-problems", type=int, default=0, metavar="N", help="only the first N problems")
        p.add_argument("--device", default="auto")

    p = sub.add_parser("curves", help="training loss and validation accuracy per epoch with curriculum stages (PNG)")
    p.add_argument("runs", nargs="+", metavar="[NAME=]RUN_DIR[+RUN_DIR...]",
                   help="run directories, one line each; RUN_A+RUN_B draws a run and its continuation as one line")
    p.add_argument("--out", default="runs/analysis/curves.png", metavar="FILE.png")
    p.add_argument("--chain", action="store_true",
                   help="draw the runs one after another (e.g. cot, then the Coconut run continued from it)")
    p.add_argument("--x", choices=("epoch", "problems"), default="epoch",
                   help="x axis: optimizer steps and epochs, or training problems seen (step x train.batch_size)")
    p.set_defaults(func=run_curves)

    p = sub.add_parser("paths", help="ProsQA: classify outputs (correct / longer path, hallucination, wrong "
                                     "target, correct / incorrect label) for k = 0..6 thoughts; stacked-bar PNG")
    common(p, "runs/analysis/paths")
    p.add_argument("--k", default="0..6", help="thought counts at inference: 0..6, 0,2,4, 1..6,auto "
                                               "(auto: the halting head decides; continuous methods)")
    p.set_defaults(func=lambda a: (run_paths(a), 0)[1])

    p = sub.add_parser("steps", help="where written chains go wrong: each generated step against the gold step, "
                                     "the first error's index, chain against answer (any task with steps; PNG)")
    common(p, "runs/analysis/steps")
    p.add_argument("--n-thoughts", default=None, metavar="K|auto", help="thoughts, or auto (default: the run's)")
    p.set_defaults(func=lambda a: (run_steps(a), 0)[1])

    p = sub.add_parser("thoughts", help="accuracy and mean thoughts for fixed counts and auto (the halting head), "
                                        "overall and by the problem's number of steps (PNG)")
    common(p, "runs/analysis/thoughts")
    p.add_argument("--k", default="1..6,auto", help="settings: fixed counts and/or auto (default 1..6,auto)")
    p.add_argument("--halt-threshold", type=float, default=None, metavar="P",
                   help="auto's stop threshold (default: the run's method.halt_threshold)")
    p.set_defaults(func=lambda a: (run_thoughts(a), 0)[1])

    p = sub.add_parser("interventions", help="do the latents matter? replace each latent (a continuous thought, or "
                                             "a Token Assorted code) and report accuracy and answer flip rate (PNG)")
    common(p, "runs/analysis/interventions")
    p.add_argument("--n-thoughts", default=None, metavar="K", help="thoughts (default: the run's)")
    p.add_argument("--kinds", default="", metavar="A,B",
                   help="interventions to run (default: all; continuous thoughts: zero, mean, noise, swap, pause, "
                        "truncate; Token Assorted's codes: random, swap, pause, truncate)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise intervention")
    p.set_defaults(func=lambda a: (run_interventions_cli(a), 0)[1])

    p = sub.add_parser("scaling", help="inference-time scaling: N samples with perturbed latents, majority vote "
                                       "and pass@k against N and against forward passes (PNG)")
    common(p, "runs/analysis/scaling")
    p.add_argument("--samples", type=int, default=8, metavar="N", help="samples per problem (default 8)")
    p.add_argument("--latent-noise", default="", metavar="S1,S2",
                   help="noise levels, each a curve (relative to each latent's norm)")
    p.add_argument("--latent-dropout", default="", metavar="P1,P2", help="dropout rates, each a curve")
    p.add_argument("--n-thoughts", default=None, metavar="K", help="thoughts (default: the run's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    p.set_defaults(func=lambda a: (run_scaling_cli(a), 0)[1])

    p = sub.add_parser("search", help="decode continuous thoughts through the LM head: frontier-node values on "
                                      "ProsQA (PNG) and the top tokens of each thought on any data")
    common(p, "runs/analysis/search")
    p.add_argument("--n-thoughts", default=None, metavar="K|auto", help="thoughts, or auto (default: the run's)")
    p.add_argument("--top", type=int, default=5, help="top tokens kept per thought")
    p.set_defaults(func=lambda a: (run_search(a), 0)[1])
