"""The ``latentcot`` command line.

Sub-commands by verb: ``data`` (generate, stats, convert), ``tokenizer`` (train), ``model`` (info),
``config`` (show), ``train``, ``vqvae`` (train, eval), ``generate``, ``eval``, ``compare``, ``analyze``
(paths, search), ``report``, ``demo``.

Notes (``wrote ...``, an epoch's summary, a warning) go through :mod:`logging` onto stderr
(:mod:`latentcot.logs`); stdout holds a command's result (a table, JSON, generated text). ``--quiet`` or
``LATENTCOT_LOG=warning`` keeps only warnings and errors.

Exit status:

* 0: done.
* 1: a bug (ours or a library's): Python prints the traceback.
* 2: an input of the user's is wrong (a :class:`~latentcot.errors.UserError`: a data file, a config key or
  value, a checkpoint, a flag): one line, ``error: file: record: field: ...``; set ``LATENTCOT_DEBUG=1``
  for the traceback.
* 3: out of memory, on the host or the accelerator: one line, ``error: out of memory (...): lower ...``,
  naming the batch sizes to lower (``train.micro_batch_size`` for training, ``train.eval_batch_size`` or
  ``--batch-size`` for evaluation and generation); ``LATENTCOT_DEBUG=1`` shows the traceback here too.
* 130: interrupted (Ctrl-C) outside training; training stopped by a signal exits with the status
  :class:`~latentcot.runs.TrainingStopped` carries, after its last checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

from .config import Config, describe, load_config, to_dict
from .errors import UsageError, UserError, is_out_of_memory, out_of_memory_message
from .logs import configure as configure_logging
from .runs import TrainingStopped

log = logging.getLogger(__name__)

EXIT_USER_ERROR = 2
EXIT_OUT_OF_MEMORY = 3


def _add_options_flags(parser: argparse.ArgumentParser, options_cls: type) -> None:
    """One ``--flag`` per field of a generator's options dataclass, typed and documented from it."""
    hints = typing.get_type_hints(options_cls)
    defaults = options_cls()
    group = parser.add_argument_group(f"{options_cls.__name__} (defaults shown)")
    for f in dataclasses.fields(options_cls):
        tp = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f.metadata.get("help", "") + f" (default: {default})"
        if tp is bool:
            group.add_argument(flag, dest=f"opt_{f.name}", action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        else:
            group.add_argument(flag, dest=f"opt_{f.name}", type=tp if tp in (int, float, str) else str,
                               default=None, help=help_text)


def _collect_options(args: argparse.Namespace) -> dict[str, Any]:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}


def cmd_data_generate(args: argparse.Namespace) -> int:
    from .data.generators import GENERATORS
    from .data.io import save_records
    from .data.stats import dataset_stats

    from .data.io import check_writable

    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    entry = GENERATORS[args.task]
    options = entry.options(**_collect_options(args))
    out = args.out or f"data/{args.task}_n{args.n}_seed{args.seed}.json"
    check_writable(out, "--out")
    records = entry.generate(args.n, args.seed, options)
    save_records(records, out)
    stats = dataset_stats(records)
    log.info(f"wrote {len(records)} {args.task} problems to {out}")
    print(json.dumps({k: stats[k] for k in ("steps", "steps_histogram") if k in stats} | (
        {"graph": stats["graph"]} if "graph" in stats else {})))
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from .data.io import load_records
    from .data.stats import dataset_stats
    from .tokenization import build_tokenizer

    records = load_records(args.file, args.format)
    tokenizer = build_tokenizer(args.tokenizer, records) if args.tokenizer != "none" else None
    print(json.dumps(dataset_stats(records, tokenizer), indent=2))
    return 0


def cmd_data_convert(args: argparse.Namespace) -> int:
    from .data.io import load_records, save_records

    from .data.io import check_writable

    check_writable(args.dst, "destination")
    records = load_records(args.src, args.src_format)
    save_records(records, args.dst, args.dst_format)
    log.info(f"wrote {len(records)} problems to {args.dst}")
    return 0


def cmd_tokenizer_train(args: argparse.Namespace) -> int:
    from .data.io import load_records
    from .tokenization import METHOD_TOKENS, add_method_tokens, build_tokenizer

    from .data.io import check_writable

    check_writable(args.out, "--out", directory=True)
    records = []
    for path in args.data:
        found = load_records(path)
        if not found:
            raise UsageError(f"{path}: no problems to train a tokenizer on")
        records.extend(found)
    tokenizer = build_tokenizer(args.kind, records, vocab_size=args.vocab_size, min_frequency=args.min_frequency)
    add_method_tokens(tokenizer, METHOD_TOKENS)
    tokenizer.save_pretrained(args.out)
    log.info(f"trained a {args.kind} tokenizer on {len(records)} problems: {len(tokenizer)} tokens, saved to {args.out}")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    from .data.io import load_records
    from .models import build_model_and_tokenizer, count_parameters
    from .tokenization import METHOD_TOKENS

    cfg = load_config(args.config, args.overrides)
    records = load_records(cfg.data.train) if cfg.data.train else []
    model, tokenizer = build_model_and_tokenizer(cfg.model, cfg.tokenizer, records, METHOD_TOKENS)
    print(f"{type(model).__name__}: {count_parameters(model):,} parameters, vocabulary {len(tokenizer):,}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    import yaml

    if args.keys:
        width = max(len(k) for k, *_ in describe(Config))
        for key, tp, default, help_text in describe(Config):
            print(f"{key:<{width}}  {tp:<10} {default!r:<14} {help_text}")
        return 0
    cfg = load_config(args.config, args.overrides)
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    from .training.distributed import shutdown

    cfg = load_config(args.config, args.overrides)
    history = train(cfg).state.history
    shutdown()
    if history:
        print(json.dumps(history[-1]))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .compare import ComparePlan, CompareRun, compare, load_plan

    if args.plan and args.runs:
        raise UsageError("give either a plan file or --runs, not both")
    if args.plan:
        plan = load_plan(args.plan, args.overrides)
        if args.out:
            plan = replace(plan, output_dir=args.out)
    else:
        if not args.runs or not args.data:
            raise UsageError("without a plan file, compare needs --runs NAME=RUN_DIR ... and --data FILE")
        if args.overrides:
            raise UsageError(f"overrides {args.overrides} need a plan file")
        runs = []
        for item in args.runs:
            name, sep, path = item.partition("=")
            runs.append(CompareRun(name=name, checkpoint=path) if sep else CompareRun(name=Path(item).name,
                                                                                       checkpoint=item))
        plan = ComparePlan(output_dir=args.out or "runs/compare", runs=runs)
    if args.data:
        plan = replace(plan, eval_data=args.data)
    if args.batch_size is not None:
        plan = replace(plan, eval_batch_size=args.batch_size)
    only = [n for n in (args.only or "").split(",") if n]
    compare(plan, only=only, eval_only=args.eval_only)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoSettings, run_demo

    run_demo(Path(args.out), seed=args.seed, settings=DemoSettings(precision=args.precision))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .data.generators import GENERATORS
    from .data.io import FORMATS

    parser = argparse.ArgumentParser(prog="latentcot", description="Train, evaluate and inspect latent-reasoning LMs.")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="warnings and errors only, no notes (the same as LATENTCOT_LOG=warning); progress bars "
                             "stay (train.progress=false turns them off)")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate, inspect and convert problem files").add_subparsers(
        dest="data_command", required=True)
    gen = data.add_parser("generate", help="generate a synthetic data set").add_subparsers(dest="task", required=True)
    for name, entry in GENERATORS.items():
        p = gen.add_parser(name, help=entry.description, description=entry.description)
        p.add_argument("--n", type=int, required=True, help="number of problems")
        p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same file)")
        p.add_argument("--out", default="", help="output file (.json, .jsonl or iCoT .txt); "
                       "default data/TASK_nN_seedS.json")
        _add_options_flags(p, entry.options)
        p.set_defaults(func=cmd_data_generate)

    p = data.add_parser("stats", help="statistics of a problem file (also validates it)")
    p.add_argument("file")
    p.add_argument("--format", choices=FORMATS, default=None, help="default: from the file suffix")
    p.add_argument("--tokenizer", choices=("word", "bpe", "none"), default="word",
                   help="tokenizer trained on the file to count tokens")
    p.set_defaults(func=cmd_data_stats)

    p = data.add_parser("convert", help="convert between .json, .jsonl and iCoT .txt")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--src-format", choices=FORMATS, default=None)
    p.add_argument("--dst-format", choices=FORMATS, default=None)
    p.set_defaults(func=cmd_data_convert)

    tok = sub.add_parser("tokenizer", help="tokenizers").add_subparsers(dest="tokenizer_command", required=True)
    p = tok.add_parser("train", help="train a word-level or BPE tokenizer on problem files")
    p.add_argument("--data", nargs="+", required=True, help="problem files")
    p.add_argument("--kind", choices=("word", "bpe"), default="word")
    p.add_argument("--vocab-size", type=int, default=8000, help="BPE vocabulary size")
    p.add_argument("--min-frequency", type=int, default=1)
    p.add_argument("--out", required=True, help="directory to save the tokenizer to")
    p.set_defaults(func=cmd_tokenizer_train)

    model = sub.add_parser("model", help="models").add_subparsers(dest="model_command", required=True)
    p = model.add_parser("info", help="build the model a config describes and print its size")
    p.add_argument("--config", default=None, help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.preset=cpu-small")
    p.set_defaults(func=cmd_model_info)

    cfg = sub.add_parser("config", help="configs").add_subparsers(dest="config_command", required=True)
    p = cfg.add_parser("show", help="print the merged config (defaults < file < overrides)")
    p.add_argument("--config", default=None, help="YAML config file")
    p.add_argument("--keys", action="store_true", help="list every key with its type, default and help")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=3e-4")
    p.set_defaults(func=cmd_config_show)

    from .evaluation.cli import add_eval_parser, add_generate_parser

    add_generate_parser(sub)
    add_eval_parser(sub)

    from .vqvae.cli import add_vqvae_parser

    add_vqvae_parser(sub)

    from .analysis.cli import add_analyze_parser

    add_analyze_parser(sub)

    from .analysis.report import add_report_parser

    add_report_parser(sub)

    from .training.export import add_export_parser

    add_export_parser(sub)

    p = sub.add_parser("train", help="train a model with any method (single process or under torchrun)",
                       description="Train with a YAML config and dotted overrides. Several GPUs: "
                       "torchrun --nproc_per_node N -m latentcot train --config FILE ...")
    p.add_argument("--config", default=None, help="YAML config file (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=3e-4 method.name=coconut")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "compare", help="train or load runs of several methods and tabulate them on one data set",
        description="With a plan file (see configs/compare/): train every run that has not finished, then "
                    "evaluate all of them on the same problems and write comparison.md/.json (the layout of "
                    "the Coconut paper's Table 1). With --runs: evaluate saved runs only.")
    p.add_argument("plan", nargs="?", default="", help="comparison plan (YAML)")
    p.add_argument("overrides", nargs="*", help="dotted overrides of the plan, e.g. eval_batch_size=8")
    p.add_argument("--runs", nargs="+", metavar="NAME=RUN_DIR", help="saved runs to compare instead of a plan")
    p.add_argument("--data", default="", metavar="FILE", help="problems to evaluate on (overrides the plan's)")
    p.add_argument("--out", default="", metavar="DIR", help="output directory (overrides the plan's)")
    p.add_argument("--batch-size", type=int, default=None, help="generation batch size (default: the plan's, 1)")
    p.add_argument("--only", default="", metavar="A,B", help="train only these runs; unfinished others are left out of the table")
    p.add_argument("--eval-only", action="store_true", help="train nothing; every run must be finished")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", help="small end-to-end run on built-in defaults (CPU)")
    p.add_argument("--out", default="runs/demo", help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="train.precision of the three runs, and of their evaluation (auto: fp32 on a CPU)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .progress import quiet_library_bars

    quiet_library_bars()
    try:
        configure_logging(quiet=args.quiet)
        return args.func(args)
    except TrainingStopped as stop:
        print(stop, file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        # Training handles Ctrl-C itself (a checkpoint, then TrainingStopped); elsewhere nothing is half-written.
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as err:
        if os.environ.get("LATENTCOT_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (MemoryError, RuntimeError) as err:  # torch's OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(err) or os.environ.get("LATENTCOT_DEBUG"):
            raise
        print(f"error: {out_of_memory_message(err)}", file=sys.stderr)
        return EXIT_OUT_OF_MEMORY


if __name__ == "__main__":
    sys.exit(main())
