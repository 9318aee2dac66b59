"""Training and evaluating the VQ-VAE (saving and loading: :mod:`latentcot.vqvae.io`).

A run directory looks like the LM trainer's: ``config.yaml``, ``metrics.jsonl`` and
``checkpoints/epoch_NNN/`` with ``model.safetensors``, ``vqvae.json`` (the model's constructor
arguments), ``config.yaml``, the tokenizer, ``optimizer.pt``, ``rng.pt`` and ``state.json``. Each
checkpoint is written into a temporary directory and renamed into place, so an interrupted save never
leaves a half-written checkpoint that looks complete.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import runs
from ..config import save_config
from ..data.encodings import build_encoding
from ..data.io import load_records
from ..progress import progress_bar
from ..data.records import Record
from ..errors import ConfigError
from ..runs import TrainingStopped
from ..runtime import StopRequests, pick_device, seed_everything, set_rng_state
from ..schedule import lr_at
from ..tokenization import tokenize_records
from ..training.metrics import MetricsLog
from .config import VQVAEConfig, validate
from .io import build_vqvae, load_vqvae, save_vqvae, vqvae_tokenizer  # noqa: F401  (load_vqvae: public here too)
from .model import VQVAE, ChunkExample, chunk_examples, codebook_stats, collate_chunks

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- evaluation


def _batches(examples: Sequence[ChunkExample], size: int) -> list[Sequence[ChunkExample]]:
    return [examples[i:i + size] for i in range(0, len(examples), size)]


@torch.no_grad()
def evaluate_vqvae(model: VQVAE, records: Sequence[Record], tokenizer, batch_size: int = 256,
                   progress: bool = False) -> dict[str, Any]:
    """Reconstruction and codebook usage on the problems' traces.

    token_accuracy: real (non-pad) chunk tokens predicted right; chunk_accuracy: chunks with every real
    token right; trace_accuracy: problems whose whole trace comes back; recon_loss: cross-entropy per
    real token; plus :func:`codebook_stats` of the codes the chunks got.
    """
    was_training = model.training
    model.eval()
    examples = chunk_examples(tokenize_records(records, tokenizer), model.chunk_len)
    correct_tokens = real_tokens = correct_chunks = 0
    loss_sum = 0.0
    chunk_ok: dict[int, bool] = {}
    codes: list[torch.Tensor] = []
    for batch in progress_bar(_batches(examples, batch_size), desc="vqvae eval", unit="batch", enabled=progress):
        tensors = {k: v.to(model.device)
                   for k, v in collate_chunks(batch, model.pad_id, model.chunk_len, model.max_question_len).items()}
        out = model(**tensors)
        mask = tensors["chunk_mask"]
        right = (out["logits"].argmax(-1) == tensors["chunk_ids"]) | ~mask
        token_right = (right & mask).sum().item()
        correct_tokens += token_right
        n_real = mask.sum().item()
        real_tokens += n_real
        loss_sum += torch.nn.functional.cross_entropy(
            out["logits"][mask], tensors["chunk_ids"][mask], reduction="sum").item()
        whole = right.all(dim=1).tolist()
        correct_chunks += sum(whole)
        for ex, ok in zip(batch, whole):
            chunk_ok[ex.record_index] = chunk_ok.get(ex.record_index, True) and ok
        codes.append(out["codes"].cpu())
    model.train(was_training)
    result: dict[str, Any] = {
        "problems": len(records),
        "chunks": len(examples),
        "token_accuracy": correct_tokens / max(real_tokens, 1),
        "chunk_accuracy": correct_chunks / max(len(examples), 1),
        "trace_accuracy": sum(chunk_ok.values()) / max(len(chunk_ok), 1),
        "recon_loss": loss_sum / max(real_tokens, 1),
    }
    all_codes = torch.cat(codes) if codes else torch.zeros(0, dtype=torch.long)
    result.update(codebook_stats(all_codes, model.codebook_size))
    return result


# --------------------------------------------------------------------------- training


def _load(path: str, key: str, limit: int) -> list[Record]:
    if not path:
        raise ConfigError(f"config key '{key}' is empty: give a problem file", key)
    records = load_records(path)
    return records[:limit] if limit else records


def train_vqvae(cfg: VQVAEConfig, train_records: Sequence[Record] | None = None,
                valid_records: Sequence[Record] | None = None) -> Path:
    """Train (or resume) a VQ-VAE run; returns the newest checkpoint directory.

    Records passed in replace ``data.train`` / ``data.valid`` (tests and notebooks).
    """
    validate(cfg)
    t = cfg.train
    output_dir = Path(cfg.output_dir)
    train_records = list(train_records) if train_records is not None else _load(
        cfg.data.train, "data.train", cfg.data.max_train)
    if valid_records is None:
        valid_records = _load(cfg.data.valid, "data.valid", cfg.data.max_eval) if cfg.data.valid else []
    # The LM trained on these codes sees the problems in the same encoding, so the traces are cut there.
    encoding = build_encoding(cfg.data.encoding)
    train_records = encoding.encode_all(train_records, cfg.data.train or "data.train")
    valid_records = encoding.encode_all(valid_records, cfg.data.valid or "data.valid")
    device = pick_device(t.device)
    seed_everything(cfg.seed)

    resume_from = runs.latest_checkpoint(output_dir) if t.resume else None
    if not t.resume and runs.list_checkpoints(output_dir):
        # Mixing two runs' epoch checkpoints would let keep_checkpoints delete the new run's.
        raise ConfigError(f"{output_dir} holds checkpoints of an earlier run and train.resume is false: "
                          "choose another output_dir or remove them", "train.resume")
    if resume_from is not None:
        # The checkpoint holds the vocabulary and the model's shape; the config's may have changed since.
        model, tokenizer = load_vqvae(resume_from, device)
        state = runs.load_state(resume_from)
    else:
        tokenizer = vqvae_tokenizer(cfg, train_records)
        model = build_vqvae(cfg.model, tokenizer, t.batch_size).to(device)
        state = {"epoch": 0, "step": 0, "history": []}
    examples = chunk_examples(tokenize_records(train_records, tokenizer), model.chunk_len)
    if not examples:
        raise ConfigError("the training problems have no reasoning steps to encode", "data.train")
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    metrics = MetricsLog(output_dir / "metrics.jsonl")

    def collate(batch):
        return {k: v.to(device) for k, v in
                collate_chunks(batch, model.pad_id, model.chunk_len, model.max_question_len).items()}

    if resume_from is not None:
        optimizer.load_state_dict(torch.load(resume_from / "optimizer.pt", map_location=device, weights_only=False))
        set_rng_state(torch.load(resume_from / "rng.pt", weights_only=False))
        metrics.truncate_after(state["epoch"])
        log.info(f"resumed from {resume_from} (epoch {state['epoch']}, step {state['step']})")

    output_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, output_dir / "config.yaml")
    steps_per_epoch = max(len(examples) // t.batch_size, 1)
    total_steps = t.epochs * steps_per_epoch
    latest = resume_from
    # A signal stops the run after the epoch in progress, whose checkpoint is then the one to resume from.
    with StopRequests(what="after this epoch's checkpoint") as stops:
        for epoch in range(state["epoch"], t.epochs):
            order = list(examples)
            random.Random(cfg.seed * 1_000_003 + epoch).shuffle(order)
            # A ragged last batch is dropped so the codebook's moving averages always see full batches.
            batches = _batches(order, t.batch_size)[:steps_per_epoch]
            model.train()
            start = time.perf_counter()
            sums = {"loss": 0.0, "recon_loss": 0.0, "vq_loss": 0.0}
            epoch_codes = []
            bar = progress_bar(batches, desc=f"vqvae epoch {epoch + 1}/{t.epochs}", unit="batch", enabled=t.progress)
            for batch in bar:
                lr = lr_at(state["step"], total_steps, t.lr, t.lr_schedule, t.warmup_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                out = model(**collate(batch))
                optimizer.zero_grad(set_to_none=True)
                out["loss"].backward()
                if t.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                optimizer.step()
                state["step"] += 1
                values = {k: out[k].item() for k in sums}
                for k in sums:
                    sums[k] += values[k]
                epoch_codes.append(out["codes"].detach().cpu())
                bar.set_postfix(recon=f"{values['recon_loss']:.4f}")
                if state["step"] % max(t.log_every, 1) == 0:
                    metrics.log("train", state["step"], epoch=epoch, lr=lr, **values,
                                elapsed=round(time.perf_counter() - start, 3))
            summary: dict[str, Any] = {"epoch": epoch + 1, **{f"train_{k}": round(v / len(batches), 5)
                                                              for k, v in sums.items()}}
            usage = codebook_stats(torch.cat(epoch_codes), model.codebook_size)
            summary.update({f"train_{k}": round(v, 4) for k, v in usage.items()})
            metrics.log("epoch", state["step"], epoch=epoch, seconds=round(time.perf_counter() - start, 2),
                        **{k: v for k, v in summary.items() if k != "epoch"})
            if valid_records and t.eval_every and ((epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs):
                result = evaluate_vqvae(model, valid_records, tokenizer, t.eval_batch_size)
                metrics.log("eval", state["step"], epoch=epoch, **result)
                summary.update({f"valid_{k}": round(v, 4) if isinstance(v, float) else v for k, v in result.items()})
            state["epoch"] = epoch + 1
            state["history"].append(summary)
            latest = save_vqvae(runs.checkpoint_dir(output_dir, epoch + 1), model, tokenizer, cfg,
                                optimizer_state=optimizer.state_dict(), state=state)
            if t.keep_checkpoints > 0:
                for old in runs.list_checkpoints(output_dir)[:-t.keep_checkpoints]:
                    shutil.rmtree(old, ignore_errors=True)
            log.info(" ".join(f"{k}={v}" for k, v in summary.items()))
            if stops.requested and epoch + 1 < t.epochs:
                metrics.close()
                raise TrainingStopped(stops.signal.name, latest, stops.exit_code)
    metrics.close()
    if latest is None:
        raise ConfigError(f"train.epochs={t.epochs}: nothing to train and no checkpoint in {output_dir}", "train.epochs")
    return latest
