"""Several methods on one data set, in one table laid out like the Coconut paper's Table 1.

A comparison plan (YAML) names a base config, shared overrides and a list of runs. Each run is trained
under ``output_dir/NAME`` (skipped when already finished, resumed when interrupted) or taken from an
existing ``checkpoint``; then every run is evaluated on the same problems and one table is written as
Markdown and JSON. A value ``@NAME`` in a run's overrides stands for run NAME's final checkpoint, so
``train.init_from=@cot`` continues from the cot run trained earlier in the same plan.

Time per problem is measured at ``eval_batch_size`` (1 by default, as the paper measures latency).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence, Union

from .config import Config, ConfigError, apply_overrides, load_config, option
from .errors import UsageError

log = logging.getLogger(__name__)

class UnfinishedBaseRun(UsageError):
    """A run of the plan continues from (``@NAME``) a run that has not finished training."""


TABLE_COLUMNS = ("method", "accuracy", "generated tokens", "forward passes", "time per problem (ms)")


@dataclass
class CompareRun:
    name: str = option("", "row name in the table; the run trains in output_dir/NAME")
    config: str = option("", "YAML config of this run ('' = the plan's base_config)")
    overrides: list[str] = option([], "dotted overrides after the plan's; '@NAME' in a value is run NAME's "
                                      "final checkpoint")
    checkpoint: str = option("", "evaluate this saved run or checkpoint instead of training one")
    n_thoughts: Union[int, Literal["auto"]] = option(
        -1, "continuous thoughts (or pauses) at evaluation (-1 = the method's default; auto = the halting head "
        "decides per problem)")


@dataclass
class ComparePlan:
    title: str = option("", "caption of the table")
    output_dir: str = option("runs/compare", "where runs, evaluations and the table go")
    base_config: str = option("", "YAML config every run starts from")
    overrides: list[str] = option([], "dotted overrides applied to every run")
    eval_data: str = option("", "problems to evaluate on ('' = the config's data.test, else data.valid)")
    max_eval: int = option(0, "evaluate on only the first N problems (0 = all)")
    eval_batch_size: int = option(1, "problems per generation batch (1 = latency as in the paper)")
    device: str = option("auto", "device for evaluation")
    runs: list[CompareRun] = field(default_factory=list, metadata={"help": "the methods to compare, in table order"})


def load_plan(path: str | Path, overrides: Sequence[str] = ()) -> ComparePlan:
    """Read a plan file (errors name the key, e.g. ``runs[2].overrides``) and check its runs."""
    plan = load_config(path, list(overrides), cls=ComparePlan)
    _check_runs(plan, str(path))
    return plan


def _check_runs(plan: ComparePlan, source: str) -> None:
    if not plan.runs:
        raise ConfigError(f"{source}: config key 'runs' must list at least one run")
    seen: set[str] = set()
    for i, run in enumerate(plan.runs):
        if not run.name:
            raise ConfigError(f"{source}: config key 'runs[{i}].name' is missing")
        if run.name in seen:
            raise ConfigError(f"{source}: config key 'runs[{i}].name': run {run.name!r} appears twice")
        for item in run.overrides:
            value = item.split("=", 1)[-1]
            if value.startswith("@") and value[1:] not in seen:
                raise ConfigError(f"{source}: config key 'runs[{i}].overrides': {item!r} refers to "
                                  f"{value[1:]!r}, which is not an earlier run")
        if not run.checkpoint:
            # checked now, not after hours of training the runs before it: its config (the keys its method
            # reads, their ranges), and that it trains the halting head n_thoughts=auto needs
            plain = [item for item in run.overrides if not item.split("=", 1)[-1].startswith("@")]
            cfg = load_config(run.config or plan.base_config or None, [*plan.overrides, *plain],
                              overrides_source=f"{source}: runs[{i}] ({run.name}) overrides")
            if run.n_thoughts == "auto" and not cfg.method.halting:
                raise ConfigError(f"{source}: config key 'runs[{i}].n_thoughts': auto needs a halting head; add "
                                  "method.halting=true to the run's overrides")
        seen.add(run.name)
    if plan.eval_batch_size < 1:
        raise ConfigError(f"{source}: config key 'eval_batch_size' must be >= 1")


def run_config(plan: ComparePlan, run: CompareRun, finished: dict[str, Path]) -> Config:
    """The training config of one run: base config, plan overrides, run overrides, its output dir."""
    resolved = []
    for item in run.overrides:
        key, _, value = item.partition("=")
        if value.startswith("@") and value[1:] not in finished:
            raise UnfinishedBaseRun(f"run {run.name!r} continues from run {value[1:]!r}, which has not finished "
                                    "training (train it first, e.g. with --only)")
        resolved.append(f"{key}={finished[value[1:]]}" if value.startswith("@") else item)
    cfg = load_config(run.config or plan.base_config or None, [*plan.overrides, *resolved])
    return apply_overrides(cfg, [f"output_dir={Path(plan.output_dir) / run.name}"])


def is_finished(cfg: Config) -> Path | None:
    """The final checkpoint when the run has trained all its epochs, else None."""
    from .runs import latest_checkpoint, load_state

    latest = latest_checkpoint(cfg.output_dir)
    if latest is not None and load_state(latest)["epoch"] >= cfg.train.epochs:
        return latest
    return None


def train_runs(plan: ComparePlan, only: Sequence[str] = (), train_missing: bool = True) -> dict[str, Path]:
    """Train (or find) every run in plan order; returns run name -> checkpoint to evaluate.

    With ``only``, just those runs are trained; the other unfinished runs are left out of the table."""
    from .training import train
    from .runs import resolve_run

    checkpoints: dict[str, Path] = {}
    for run in plan.runs:
        if run.checkpoint:
            checkpoints[run.name] = resolve_run(run.checkpoint)
            continue
        skipped = bool(only) and run.name not in only
        try:
            cfg = run_config(plan, run, checkpoints)
        except UnfinishedBaseRun:
            if skipped:
                log.info(f"== {run.name}: its base run has not finished and it is not in --only; left out")
                continue
            raise
        done = is_finished(cfg)
        if done is None:
            if skipped:
                log.info(f"== {run.name}: not finished and not in --only; left out of the table")
                continue
            if not train_missing:
                raise UsageError(f"run {run.name!r} has not finished training in {cfg.output_dir} "
                                 "(run the plan without --eval-only, or with --only NAME)")
            log.info(f"\n== training {run.name} ({cfg.method.name}, {cfg.train.epochs} epochs) ==")
            train(cfg)
            done = is_finished(cfg)
        else:
            log.info(f"== {run.name}: finished run found at {done}")
        checkpoints[run.name] = done
    return checkpoints


def evaluate_runs(checkpoints: dict[str, Path], records, batch_size: int = 1, n_thoughts: dict[str, int | str] | None = None,
                  device: str = "auto", out_dir: Path | None = None) -> list[dict[str, Any]]:
    """One table row per run (same problems, same batch size); per-problem rows go to out_dir/NAME.jsonl."""
    from .data.encodings import run_encoding
    from .inference.loading import load_run
    from .runtime import pick_device
    from .evaluation import evaluate

    rows = []
    for name, checkpoint in checkpoints.items():
        cfg, model, tokenizer, method = load_run(checkpoint)
        model.to(pick_device(device))
        k = (n_thoughts or {}).get(name, -1)
        result = evaluate(model, tokenizer, method, records, batch_size=batch_size,
                          n_thoughts=None if isinstance(k, int) and k < 0 else k, progress=True, encoding=run_encoding(cfg.data))
        if out_dir is not None:
            result.write_jsonl(out_dir / f"{name}.jsonl")
        rows.append({"method": name, "method_name": cfg.method.name, "checkpoint": str(checkpoint),
                     **result.summary()})
    return rows


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for r in rows:
        lines.append(f"| {r['method']} | {100 * r['accuracy']:.1f}% | {r['mean_generated_tokens']:.1f} | "
                     f"{r['mean_forward_passes']:.1f} | {1000 * r['seconds_per_problem']:.2f} |")
    return "\n".join(lines)


def write_table(rows: Sequence[dict[str, Any]], out_dir: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """``comparison.md`` and ``comparison.json`` in out_dir (written atomically)."""
    from .data.io import atomic_write

    caption = meta.get("title") or "Comparison"
    details = f"{meta['n_problems']} problems from `{meta['eval_data']}`, greedy decoding at batch size " \
              f"{meta['batch_size']} on {meta['device']}; generated tokens count continuous thoughts."
    md = f"### {caption}\n\n{details}\n\n{markdown_table(rows)}\n"
    md_path, json_path = out_dir / "comparison.md", out_dir / "comparison.json"
    atomic_write(md_path, md)
    atomic_write(json_path, json.dumps({**meta, "rows": list(rows)}, indent=2) + "\n")
    return md_path, json_path


def compare(plan: ComparePlan, only: Sequence[str] = (), eval_only: bool = False) -> list[dict[str, Any]]:
    """Train what is missing, evaluate every run, write the table; returns its rows."""
    from .data.io import load_records
    from .runtime import pick_device

    start = time.perf_counter()
    checkpoints = train_runs(plan, only, train_missing=not eval_only)
    eval_path = plan.eval_data
    if not eval_path:
        first = plan.runs[0]
        cfg = load_config(first.config or plan.base_config or None, list(plan.overrides))
        eval_path = cfg.data.test or cfg.data.valid
    if not eval_path:
        raise ConfigError("config key 'eval_data' is empty and the base config has neither data.test nor data.valid")
    records = load_records(eval_path)
    if not records:
        raise UsageError(f"{eval_path}: no problems")
    if plan.max_eval:
        records = records[:plan.max_eval]
    out_dir = Path(plan.output_dir)
    rows = evaluate_runs(checkpoints, records, plan.eval_batch_size,
                         {r.name: r.n_thoughts for r in plan.runs}, plan.device, out_dir / "eval")
    meta = {"title": plan.title, "eval_data": eval_path, "n_problems": len(records),
            "batch_size": plan.eval_batch_size, "device": str(pick_device(plan.device)),
            "minutes": round((time.perf_counter() - start) / 60, 2)}
    md_path, json_path = write_table(rows, out_dir, meta)
    print("\n" + markdown_table(rows))
    log.info(f"\nwrote {md_path} and {json_path}")
    return rows
