"""``latentcot vqvae train|eval``: the Token Assorted VQ-VAE from the command line.

Registered on the main parser by :func:`add_vqvae_parser`; errors are reported by ``latentcot.cli``.
"""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)


def cmd_vqvae_train(args: argparse.Namespace) -> int:
    from .config import load_vqvae_config
    from .train import train_vqvae

    cfg = load_vqvae_config(args.config, args.overrides)
    path = train_vqvae(cfg)
    state = json.loads((path / "state.json").read_text())
    if state.get("history"):
        print(json.dumps(state["history"][-1]))
    log.info(f"saved VQ-VAE to {path}")
    return 0


def cmd_vqvae_eval(args: argparse.Namespace) -> int:
    import sys

    from ..data.encodings import build_encoding
    from ..data.io import atomic_write, load_records
    from ..errors import UsageError
    from ..runtime import pick_device
    from .io import load_vqvae, vqvae_encoding
    from .train import evaluate_vqvae

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    records = load_records(args.data)
    if not records:
        raise UsageError(f"{args.data}: no problems")
    model, tokenizer = load_vqvae(args.run, pick_device(args.device))
    records = build_encoding(vqvae_encoding(args.run)).encode_all(records, args.data)
    result = evaluate_vqvae(model, records, tokenizer, args.batch_size, progress=True)
    text = json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})
    print(text)
    if args.out:
        atomic_write(args.out, json.dumps(result, indent=2) + "\n")
        log.info(f"wrote {args.out}")
    return 0


def add_vqvae_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``vqvae`` (``train``, ``eval``) on a sub-parser set; returns the ``vqvae`` parser."""
    parser = subparsers.add_parser("vqvae", help="Token Assorted's VQ-VAE: discrete codes for chunks of reasoning "
                                   "traces (needs the assorted extra)")
    sub = parser.add_subparsers(dest="vqvae_command", required=True)

    p = sub.add_parser("train", help="train a VQ-VAE on a problem file's traces (resumes a run)",
                       description="Train with a YAML config (see configs/vqvae/) and dotted overrides; prints the "
                       "last epoch's summary and the checkpoint path.")
    p.add_argument("--config", default=None, help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.codebook_size=128 train.epochs=5")
    p.set_defaults(func=cmd_vqvae_train)

    p = sub.add_parser("eval", help="reconstruction accuracy and codebook usage of a saved VQ-VAE",
                       description="Prints one JSON line: token/chunk/trace reconstruction accuracy, "
                       "reconstruction loss, codebook perplexity and usage.")
    p.add_argument("run", metavar="RUN", help="VQ-VAE run directory (newest checkpoint) or checkpoint directory")
    p.add_argument("--data", metavar="FILE", required=True, help="problem file (.json, .jsonl or iCoT .txt)")
    p.add_argument("--out", metavar="FILE.json", default="", help="also write the metrics here")
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="chunks per forward pass (default 256)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    p.set_defaults(func=cmd_vqvae_eval)
    return parser
