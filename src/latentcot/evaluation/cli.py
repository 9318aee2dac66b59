"""``latentcot generate`` and ``latentcot eval``: answer one question or score a problem file with a saved run.

RUN_DIR holds the HuggingFace model and tokenizer (``latentcot.models.save_model``) and the run's
``config.yaml``, whose ``method`` section says how prompts are rendered and how many thoughts to use.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..data.io import check_writable
from ..inference.loading import load_run
from ..errors import UsageError

log = logging.getLogger(__name__)


def _check_vocabulary(tokenizer, encoding, records, source: str, refuse: bool) -> None:
    """Words the run's tokenizer never saw would be read as its unknown token: refuse a typed question that
    holds any; for a problem file, warn on one line (naming them) and go on."""
    from ..tokenization import unknown_words

    encoded = encoding.encode_all(records, source)
    unknown = unknown_words(tokenizer, (r.question for r in encoded))
    if not unknown:
        return
    words = sorted(unknown, key=lambda w: (-unknown[w], w))
    shown = ", ".join(repr(w) for w in words[:8]) + (f" and {len(words) - 8} more" if len(words) > 8 else "")
    if refuse:
        raise UsageError(f"--question: words the run's tokenizer never saw: {shown} (each would be read as "
                         f"{tokenizer.unk_token}); use the training data's words")
    affected = sum(1 for r in encoded if unknown_words(tokenizer, [r.question]))
    log.warning(f"warning: {source}: {affected} of {len(records)} problems hold words the run's tokenizer never saw, "
                f"read as {tokenizer.unk_token}: {shown}")


def thought_count(text: str | None, flag: str = "--n-thoughts") -> int | str | None:
    """A ``--n-thoughts`` value: a count >= 0, ``auto`` (the halting head decides per problem), or None."""
    if text is None or text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag}: expected a count or 'auto', got {text!r}") from None
    if value < 0:
        raise UsageError(f"{flag} must be at least 0 (or 'auto'), got {value}")
    return value


def halt_threshold(value: float | None) -> float | None:
    """A ``--halt-threshold`` value: the stop probability for this call (passed to ``evaluate``; the run's
    ``method.halt_threshold`` stays as the run saved it), or None for the run's own."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise UsageError(f"--halt-threshold must be a probability in [0, 1], got {value}")
    return value


def latent_sampling(args: argparse.Namespace):
    """The ``--samples``/``--latent-noise``/``--latent-dropout``/``--seed`` flags as a LatentSampling, or None
    (greedy) when none of the first three is given."""
    if args.samples is None and not args.latent_noise and not args.latent_dropout:
        return None
    from ..inference.sampling import LatentSampling

    return LatentSampling(samples=1 if args.samples is None else args.samples, noise=args.latent_noise,
                          dropout=args.latent_dropout, seed=args.seed)


def _check_sampling(sampling, method, args: argparse.Namespace) -> None:
    if sampling is not None:
        from ..inference.sampling import check_sampling_call

        check_sampling_call(method, sampling, args.n_thoughts, args.max_new_tokens)


def _add_latent_text(method, rows: list[dict]) -> None:
    """Token Assorted: each row gains ``latent_text``, its latent codes read back as text by the VQ-VAE."""
    for row in rows:
        decoded = method.latent_text(row["generated"], row["question"])
        if decoded is None:
            raise UsageError(f"--show-latent: method {method.name!r} writes no latent codes")
        row["latent_text"] = decoded


def _warn_unmapped(result, source: str) -> None:
    if result.unmapped_outputs:
        log.warning(f"warning: {source}: {result.unmapped_outputs} of {result.n_problems} outputs hold pieces that name "
                    "nothing in their question (each row lists them under 'unmapped', shown as <unmapped: ...>)")


def cmd_generate(args: argparse.Namespace) -> int:
    from ..data.encodings import run_encoding
    from ..data.io import load_records
    from ..data.records import Record
    from . import evaluate, extract_answer

    for flag, value in (("--batch-size", args.batch_size), ("--max-new-tokens", args.max_new_tokens)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    args.n_thoughts = thought_count(args.n_thoughts)
    threshold = halt_threshold(args.halt_threshold)
    if args.question is not None and not args.question.strip():
        raise UsageError("--question is empty: give the question text")
    sampling = latent_sampling(args)
    if args.out:
        check_writable(args.out, "--out")
    records = [Record(args.question, [], "")] if args.question is not None else load_records(args.data)
    if not records:
        raise UsageError(f"{args.data}: no problems")
    cfg, model, tokenizer, method = load_run(args.run_dir)
    _check_sampling(sampling, method, args)
    _check_vocabulary(tokenizer, run_encoding(cfg.data), records, args.data or "--question",
                      refuse=args.question is not None)
    from ..runtime import autocast_for, pick_device

    device = pick_device(args.device)
    model.to(device)
    with autocast_for(args.precision, device, "--precision")():
        result = evaluate(model, tokenizer, method, records, batch_size=args.batch_size, n_thoughts=args.n_thoughts,
                          max_new_tokens=args.max_new_tokens, progress=args.data is not None,
                          encoding=run_encoding(cfg.data), source=args.data or "--question", halt_threshold=threshold,
                          sampling=sampling)
    if args.show_latent:
        _add_latent_text(method, result.rows)
    if args.out:
        result.write_jsonl(args.out)
    if args.question is not None:
        # A single question has no reference answer: show what the model wrote, nothing to score.
        row = result.rows[0]
        print(row.get("latent_text", row["generated"]))
        if row.get("unmapped"):
            log.warning(f"warning: the model wrote {', '.join(repr(u) for u in row['unmapped'])}, which names nothing in "
                        f"the question (data.encoding={cfg.data.encoding}); shown as <unmapped: ...>")
        if sampling is not None:
            print(f"[majority of {sampling.samples} samples, agreement {row['agreement']:.2f}: "
                  + ", ".join(repr(extract_answer(t)) for t in row["samples"]) + "]", file=sys.stderr)
        print(f"[{row['n_thoughts']} thoughts, {row['generated_tokens']} generated tokens, "
              f"{row['forward_passes']} forward passes, {row['seconds']:.3f} s]", file=sys.stderr)
    else:
        print(json.dumps(result.summary()))
        _warn_unmapped(result, args.data)
    if args.out:
        log.info(f"wrote {len(result.rows)} generations to {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..data.encodings import run_encoding
    from ..data.io import atomic_write, load_records
    from . import evaluate
    from ..runs import resolve_run
    from ..runtime import autocast_for, pick_device

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    args.n_thoughts = thought_count(args.n_thoughts)
    threshold = halt_threshold(args.halt_threshold)
    sampling = latent_sampling(args)
    k = "" if args.n_thoughts is None else f"_k{args.n_thoughts}"
    if sampling is not None:  # every setting its own file
        k += (f"_n{sampling.samples}" + (f"_noise{sampling.noise:g}" if sampling.noise else "")
              + (f"_dropout{sampling.dropout:g}" if sampling.dropout else "") + f"_seed{sampling.seed}")
    out = Path(args.out) if args.out else Path(args.run_dir) / "eval" / f"{Path(args.data).stem}{k}.jsonl"
    check_writable(out, "--out" if args.out else "the evaluation output")
    records = load_records(args.data)
    if args.max_problems:
        records = records[:args.max_problems]
    if not records:
        raise UsageError(f"{args.data}: no problems")
    checkpoint = resolve_run(args.run_dir)
    cfg, model, tokenizer, method = load_run(checkpoint)
    _check_sampling(sampling, method, args)
    _check_vocabulary(tokenizer, run_encoding(cfg.data), records, args.data, refuse=False)
    device = pick_device(args.device)
    model.to(device)
    with autocast_for(args.precision, device, "--precision")():
        result = evaluate(model, tokenizer, method, records, batch_size=args.batch_size, n_thoughts=args.n_thoughts,
                          max_new_tokens=args.max_new_tokens, progress=True,
                          encoding=run_encoding(cfg.data), source=args.data or "--question", halt_threshold=threshold,
                          sampling=sampling)
    if args.show_latent:
        _add_latent_text(method, result.rows)
    result.write_jsonl(out)
    summary = {"run": str(checkpoint), "method": method.name, "data": args.data, "batch_size": args.batch_size,
               **result.summary()}
    atomic_write(out.with_suffix(".summary.json"), json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    _warn_unmapped(result, args.data)
    log.info(f"wrote {len(result.rows)} per-problem rows to {out}")
    return 0


def _generation_flags(p: argparse.ArgumentParser, batch_size: int, out_help: str) -> None:
    """The flags ``generate`` and ``eval`` share."""
    p.add_argument("--n-thoughts", default=None, metavar="K|auto",
                   help="continuous thoughts (or pauses) per problem, or auto: the halting head decides, at most "
                        "method.max_thoughts (default: the run's method.inference_thoughts)")
    p.add_argument("--halt-threshold", type=float, default=None, metavar="P",
                   help="with auto: stop thinking once the halting head's stop probability exceeds P "
                        "(default: the run's method.halt_threshold)")
    p.add_argument("--batch-size", type=int, default=batch_size, metavar="B",
                   help=f"problems per batch (default {batch_size})")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help="longest continuation (default: the run's method.max_new_tokens)")
    p.add_argument("--out", default="", metavar="FILE.jsonl", help=out_help)
    p.add_argument("--show-latent", action="store_true",
                   help="assorted: add each output's latent codes decoded to text by the VQ-VAE (latent_text)")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="N answers per problem, each with its fed-back latents perturbed (--latent-noise or "
                        "--latent-dropout), sharing the question's cache; the answer is their majority vote "
                        "(continuous-thought methods)")
    p.add_argument("--latent-noise", type=float, default=0.0, metavar="SIGMA",
                   help="Gaussian noise on every fed-back latent, its norm SIGMA times the latent's (default 0)")
    p.add_argument("--latent-dropout", type=float, default=0.0, metavar="P",
                   help="dropout with probability P on every fed-back latent (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent perturbations (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="bf16 autocast or fp32; auto: bf16 on a GPU that has it, else fp32 (default auto)")


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="accuracy, generated tokens, forward passes and time per problem of a saved run",
        description="Evaluate a saved run on a problem file (any method). Prints a JSON summary and writes one "
                    "JSON row per problem (default RUN_DIR/eval/DATA[_kK].jsonl) plus a .summary.json.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (its newest checkpoint) or checkpoint")
    p.add_argument("--data", required=True, metavar="FILE", help="problem file (.json, .jsonl or iCoT .txt)")
    p.add_argument("--max-problems", type=int, default=0, metavar="N", help="only the first N problems")
    _generation_flags(p, batch_size=64, out_help="per-problem rows (default under RUN_DIR/eval)")
    p.set_defaults(func=cmd_eval)
    return p


def add_generate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``generate`` on a sub-parser set (``parser.add_subparsers()``); returns the new parser."""
    p = subparsers.add_parser(
        "generate", help="greedy answers from a saved run (one question, or a problem file with accuracy)",
        description="Greedy generation with a saved checkpoint. With --data, prints accuracy and mean costs "
                    "as one JSON line; with --question, prints the generated text.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="saved checkpoint directory (model, tokenizer, config.yaml)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--question", metavar="TEXT", help="one question, as it appears in the data")
    source.add_argument("--data", metavar="FILE", help="problem file (.json, .jsonl or iCoT .txt)")
    _generation_flags(p, batch_size=32, out_help="write one JSON row per problem here")
    p.set_defaults(func=cmd_generate)
    return p
