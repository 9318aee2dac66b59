"""``latentcot export RUN --out DIR``: a trained run as a small self-contained model directory.

The directory holds what ``latentcot eval`` and ``latentcot generate`` need and nothing else (weights,
tokenizer, the run's ``config.yaml``; no optimizer or RNG state), plus ``training.json`` (per-epoch
history and training time, the run it continued from) and, with ``--eval-data``, an evaluation whose
figures go into the model card ``README.md`` beside the command that reproduces them.

A ``data.encoding=graph_edges`` run's pair embedding (:mod:`latentcot.models.pair_embedding`) is written
into the embedding table of an untied copy of the model, so the exported weights load with plain
``AutoModelForCausalLM.from_pretrained`` and give the run's logits.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import yaml

from ..data.io import atomic_directory, atomic_write, check_writable
from ..errors import CheckpointError, UsageError

log = logging.getLogger(__name__)

KEPT_FILES = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
              "tokenizer_config.json", "special_tokens_map.json", "config.yaml")


def training_minutes(run_dir: Path) -> float:
    """Minutes spent in training epochs, read from the run's metrics (evaluation time excluded)."""
    from .metrics import read_metrics

    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0.0
    return sum(m.get("seconds", 0.0) for m in read_metrics(path) if m["type"] == "epoch") / 60


def portable_path(path: str | Path) -> str:
    """A path as a model card names it: relative to the current directory (the repository, where
    ``latentcot export`` runs), reached through a link there (``runs -> /somewhere/runs``) if one leads
    to it, and otherwise by its name alone; never a path that holds on one machine only."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    here = Path.cwd()
    target = path.resolve()
    for base, shown in [(here, Path()), (here.resolve(), Path())] + [
            (link.resolve(), Path(link.name)) for link in sorted(here.iterdir()) if link.is_symlink() and link.is_dir()]:
        for candidate in (path, target):
            if candidate.is_relative_to(base):
                return (shown / candidate.relative_to(base)).as_posix()
    return path.name


def run_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint lives in (``RUN/checkpoints/epoch_N`` -> ``RUN``)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def lineage(checkpoint: Path) -> list[dict[str, Any]]:
    """This run and the runs it continued from (``train.init_from``), newest first."""
    from ..config import load_run_config
    from ..runs import load_state, resolve_run

    chain, seen = [], set()
    while checkpoint is not None and checkpoint not in seen:
        seen.add(checkpoint)
        if not (checkpoint / "state.json").exists() and (checkpoint / "training.json").exists():
            # an exported model: its runs are gone from here, but its training.json records them
            chain.extend(json.loads((checkpoint / "training.json").read_text(encoding="utf-8")).get("runs", []))
            break
        cfg = load_run_config(checkpoint / "config.yaml")
        run = run_of(checkpoint)
        state = load_state(checkpoint) if (checkpoint / "state.json").exists() else {}
        chain.append({"run": portable_path(run), "checkpoint": portable_path(checkpoint), "method": cfg.method.name,
                      "epochs": state.get("epoch"), "steps": state.get("step"),
                      "training_minutes": round(training_minutes(run), 2), "history": state.get("history", [])})
        parent = cfg.train.init_from
        checkpoint = resolve_run(parent) if parent and Path(parent).exists() else None
    return chain


def export_model(run: str | Path, out: str | Path) -> Path:
    from ..runs import resolve_run

    checkpoint = resolve_run(run)
    out = Path(out)
    chain = lineage(checkpoint)
    with atomic_directory(out) as tmp:
        for name in KEPT_FILES:
            if (checkpoint / name).exists():
                shutil.copy2(checkpoint / name, tmp / name)
        if not (tmp / "model.safetensors").exists():
            raise CheckpointError(f"{checkpoint}: no model.safetensors to export")
        _bundle_vqvae(checkpoint, tmp)
        _materialise_pairs(checkpoint, tmp)
        _portable_config(tmp / "config.yaml")
        info = {"exported_from": portable_path(checkpoint), "runs": chain,
                "training_minutes_total": round(sum(r["training_minutes"] for r in chain), 2)}
        (tmp / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def _materialise_pairs(checkpoint: Path, out: Path) -> None:
    """A graph_edges model as a plain transformers one (:func:`~latentcot.models.pair_embedding.
    materialise_pair_embedding`), saved over the copied weights, then reloaded by plain transformers to
    check that it reads the weights as written; one clear error if it does not."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from ..models.factory import load_checkpoint_model
    from ..models.pair_embedding import CONFIG_KEY, materialise_pair_embedding

    if CONFIG_KEY not in json.loads((out / "config.json").read_text(encoding="utf-8")):
        return
    model, _ = load_checkpoint_model(checkpoint, _saved_dtype(checkpoint))
    materialise_pair_embedding(model)
    model.save_pretrained(out, safe_serialization=True)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # latentcot's other submodules (a halting head) are unknown to it
    try:
        plain = AutoModelForCausalLM.from_pretrained(out, dtype=model.dtype)
    finally:
        hf_logging.set_verbosity(level)
    same = all(torch.equal(a.weight, b.weight) for a, b in (
        (plain.get_input_embeddings(), model.get_input_embeddings()),
        (plain.get_output_embeddings(), model.get_output_embeddings())))
    if not same:
        raise UsageError(f"export: {type(model).__name__} does not keep untied input and output embeddings "
                         "through save and load, so a data.encoding=graph_edges run of it cannot be exported")


def _saved_dtype(checkpoint: Path) -> str:
    """The dtype name (as ``model.dtype`` takes it) a checkpoint's weights were saved in."""
    recorded = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    name = str(recorded.get("dtype") or recorded.get("torch_dtype") or "float32")
    return name if name in ("float32", "bfloat16", "float16", "float64") else "float32"


VQVAE_DIR = "vqvae"
# the config keys that name files or directories
PATH_KEYS = ("output_dir", "data.train", "data.valid", "data.test", "tokenizer.path", "model.name_or_path",
             "train.init_from", "method.vqvae")


def _with_values(cfg: Any, values: dict[str, Any]) -> Any:
    """A new config with some dotted keys set, for the exported copy's config; ``cfg`` (the run's, as it
    saved it) is not changed, and keys its method does not read are kept as the run saved them."""
    from ..config import from_dict, to_dict

    data = to_dict(cfg)
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        (data[section] if section else data)[name] = value
    return from_dict(type(cfg), data)


def _portable_config(path: Path, vqvae: bool = False) -> None:
    """The exported config names its paths as :func:`portable_path` does (a hub id stays as it is)."""
    from ..config import load_run_config, save_config
    from ..vqvae.config import load_vqvae_config

    if not path.exists():
        return
    cfg = load_vqvae_config(path) if vqvae else load_run_config(path)
    portable = {}
    for key in PATH_KEYS:
        section, _, name = key.rpartition(".")
        owner = getattr(cfg, section, None) if section else cfg
        value = getattr(owner, name, "")
        if value and Path(value).is_absolute():
            portable[key] = portable_path(value)
    if portable:
        save_config(_with_values(cfg, portable), path)


def _bundle_vqvae(checkpoint: Path, out: Path) -> None:
    """A Token Assorted model needs its VQ-VAE at inference (the codes' length, reading codes back as
    text) and the data encoding it was trained on: copy its weights, hyperparameters, tokenizer and config
    into ``out/vqvae`` and point the exported config there, relative to the model directory, so the export
    works with nothing else present."""
    from ..config import load_run_config, save_config
    from ..vqvae.io import HPARAMS_FILE, MODEL_FILE, resolve_vqvae

    cfg = load_run_config(out / "config.yaml")
    if not cfg.method.vqvae:
        return
    source = resolve_vqvae(cfg.method.vqvae if Path(cfg.method.vqvae).exists()
                           else checkpoint / cfg.method.vqvae)
    (out / VQVAE_DIR).mkdir()
    for name in (MODEL_FILE, HPARAMS_FILE, "config.yaml", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy2(source / name, out / VQVAE_DIR / name)
    save_config(_with_values(cfg, {"method.vqvae": VQVAE_DIR}), out / "config.yaml")
    _portable_config(out / VQVAE_DIR / "config.yaml", vqvae=True)


def model_card(out: Path, summary: dict[str, Any] | None, eval_data: str, notes: str, batch_size: int) -> str:
    cfg_text = (out / "config.yaml").read_text()
    cfg = yaml.safe_load(cfg_text)
    info = json.loads((out / "training.json").read_text())
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2 ** 20
    lines = [f"# {out.name}", "", notes.strip() + "\n" if notes.strip() else "",
             f"- method: `{cfg['method']['name']}`; data encoding: `{cfg['data'].get('encoding', 'text')}`; "
             f"model: {cfg['model']['arch']} `{cfg['model']['preset']}` ({size:.1f} MB on disk)",
             f"- trained on: `{portable_path(cfg['data']['train'])}` (seed {cfg['seed']} for shuffling and initialisation)",
             f"- training time: {info['training_minutes_total']:.1f} minutes of training epochs in all"]
    for r in info["runs"]:
        lines.append(f"  - `{r['run']}`: {r['method']}, {r['epochs']} epochs, {r['steps']} steps, "
                     f"{r['training_minutes']:.1f} min")
    if summary is not None:
        thoughts = (f"the halting head chose {summary['mean_thoughts']:.2f} thoughts on average"
                    if summary["n_thoughts"] == "auto" else f"{summary['n_thoughts']} thoughts")
        lines += [f"- accuracy on `{portable_path(eval_data)}`: **{100 * summary['accuracy']:.1f}%** "
                  f"({summary['n_problems']} problems), {summary['mean_generated_tokens']:.1f} generated tokens "
                  f"(thoughts included), {thoughts}",
                  "", "Reproduce the figure (CPU, well under 2 minutes):", "",
                  "```bash", f"latentcot eval {portable_path(out)} --data {portable_path(eval_data)} "
                  f"--batch-size {batch_size}", "```"]
    lines += ["", "## Config as trained", "", "```yaml", cfg_text.rstrip(), "```", ""]
    return "\n".join(line for line in lines if line is not None)


def cmd_export(args: argparse.Namespace) -> int:
    check_writable(args.out, "--out", directory=True)
    out = export_model(args.run_dir, args.out)
    summary = None
    if args.eval_data:
        from ..data.encodings import run_encoding
        from ..data.io import load_records
        from ..evaluation import evaluate
        from ..inference import load_run

        records = load_records(args.eval_data)
        cfg, model, tokenizer, method = load_run(out)
        result = evaluate(model, tokenizer, method, records, batch_size=args.batch_size,
                          encoding=run_encoding(cfg.data), source=args.eval_data,
                          progress=True)
        summary = result.summary()
        atomic_write(out / "eval_summary.json", json.dumps({"data": portable_path(args.eval_data), **summary}, indent=2) + "\n")
        print(json.dumps(summary))
    atomic_write(out / "README.md", model_card(out, summary, args.eval_data, args.notes, args.batch_size))
    log.info(f"exported {args.run_dir} to {out}")
    return 0


def add_export_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="a trained run as a small model directory with a model card",
        description="Copy a run's final weights, tokenizer and config (no optimizer state) into DIR, which "
                    "`latentcot eval` and `generate` accept; with --eval-data, evaluate it and put the "
                    "figures in DIR/README.md.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (its newest checkpoint) or checkpoint")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--eval-data", default="", metavar="FILE", help="evaluate on these problems for the card")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--notes", default="", help="a paragraph for the top of the model card")
    p.set_defaults(func=cmd_export)
