"""One trainer for every method: set-up, epochs, evaluation and checkpoints are separate steps.

The method decides how each problem is rendered at each epoch (and when the optimizer restarts); the
trainer only batches :class:`~latentcot.methods.Example` objects and minimises the summed token loss.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..config import Config, save_config
from ..data.encodings import GraphEdgesEncoding, augment_graph, run_encoding
from ..data.io import check_writable, load_records
from ..data.records import Record
from ..examples import label_count
from ..methods import Example, Method, TokenizedRecord, build_method, method_class, tokenize_records
from ..models import build_model_and_tokenizer, load_checkpoint_model, resize_for_tokenizer
from ..models.pair_embedding import detach_pair_embedding, pair_embedding, prepare_pair_model
from ..progress import progress_bar
from .. import runs
from ..runs import TrainingStopped
from ..runtime import StopRequests, autocast_for, pick_device, seed_everything, set_rng_state
from ..schedule import lr_at
from ..tokenization import METHOD_TOKENS, add_method_tokens
from . import checkpoint as ckpt
from .distributed import barrier, clip_grad_norm, is_sharded, setup, shard_blocks, sum_gradients
from .metrics import MetricsLog
from ..errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    history: list[dict] = field(default_factory=list)
    batch: int = 0  # batches done in the unfinished epoch (a mid-epoch checkpoint resumes after them)
    epoch_losses: list[float] = field(default_factory=list)  # their losses, for the epoch's mean


class Trainer:
    def __init__(self, cfg: Config, *, on_epoch_end: Callable[["Trainer", int], None] | None = None,
                 train_records: Sequence[Record] | None = None, valid_records: Sequence[Record] | None = None):
        self.cfg = cfg
        self.on_epoch_end = on_epoch_end
        self.output_dir = Path(cfg.output_dir)
        self.dist = setup(pick_device(cfg.train.device))
        self.device = pick_device(cfg.train.device, self.dist.local_rank)
        self.train_records = list(train_records) if train_records is not None else self._load(cfg.data.train, "data.train")
        if cfg.data.max_train:
            self.train_records = self.train_records[: cfg.data.max_train]
        # Training sees the encoded problems; validation stays in the file's words and evaluate() converts.
        self.encoding = run_encoding(cfg.data)
        self.train_records = self.encoding.encode_all(self.train_records, cfg.data.train or "data.train")
        if valid_records is not None:
            self.valid_records = list(valid_records)
        else:
            self.valid_records = self._load(cfg.data.valid, "data.valid") if cfg.data.valid else []
        if cfg.data.max_eval:
            self.valid_records = self.valid_records[: cfg.data.max_eval]
        self._check_batching()
        if self.dist.is_main:
            check_writable(self.output_dir, "config key 'output_dir':", directory=True)
        seed_everything(cfg.seed)
        self.state = TrainState()
        self._stops: StopRequests | None = None
        resuming = self._checkpoint_to_resume() if cfg.train.resume else None
        resume_from = resuming.path if resuming is not None else None
        self.model, self.tokenizer = self._build_model(resume_from)
        self.sharded = cfg.train.fsdp and self.dist.enabled
        if self.sharded:
            shard_blocks(self.model, self.device, self.dist)
        if cfg.train.compile:
            # the instance's forward, not a wrapper module: parameter names, checkpoints and the direct calls
            # of the continuous-thought pass stay as they are
            base = self.model.base_model
            base.forward = torch.compile(base.forward, dynamic=True)
        self.method: Method = build_method(cfg.method, self.tokenizer)
        self.method.prepare_model(self.model, resuming=resume_from is not None)
        self.method.build_side_modules(self.model, resume_from)
        if self.sharded and self.method.side_modules:
            raise ConfigError(f"config key 'train.fsdp': method {self.method.name!r} trains modules beside the model "
                             f"({', '.join(self.method.side_modules)}), which FSDP would not shard; use DDP")
        self.augmenting = cfg.data.shuffle_graph or cfg.data.relabelling()
        if self.augmenting and not self.method.records_can_change:
            raise ConfigError(f"config keys 'data.shuffle_graph'/'data.relabel_nodes': method {self.method.name!r} "
                             "prepares each problem's steps once (its VQ-VAE codes), so they cannot be rewritten "
                             "every epoch")
        self.train_tokens: list[TokenizedRecord] = self.method.prepare(
            tokenize_records(self.method.with_training_targets(self.train_records), self.tokenizer), str(self.device),
            cfg.data.encoding)
        self._check_context()
        self.optimizer = self._new_optimizer()
        # global_batches() drops a ragged last batch, so an epoch has floor(n / batch) steps.
        self.epoch_size = min(cfg.data.epoch_size or len(self.train_tokens), len(self.train_tokens))
        self.total_steps = (cfg.train.schedule_epochs or cfg.train.epochs) * max(self.epoch_size // cfg.train.batch_size, 1)
        self.autocast = self._autocast()
        self._last_save = time.monotonic()
        self.last_terms: dict[str, float] = {}  # the mean of each of the method's own loss terms on the last step
        self.metrics = MetricsLog(self.output_dir / "metrics.jsonl", enabled=self.dist.is_main,
                                  tensorboard_dir=self.output_dir / "tensorboard" if cfg.train.tensorboard else None)
        if resuming is not None:
            self._resume(resuming)

    # -- set-up ------------------------------------------------------------------------------------
    @staticmethod
    def _load(path: str, key: str) -> list[Record]:
        if not path:
            raise ConfigError(f"config key '{key}' is empty: give a problem file")
        records = load_records(path)
        if not records:
            raise ConfigError(f"{path} (config key '{key}'): no problems")
        return records

    def _check_batching(self) -> None:
        t = self.cfg.train
        if t.batch_size % self.dist.world_size:
            raise ConfigError(f"config key 'train.batch_size': {t.batch_size} does not split over "
                             f"{self.dist.world_size} processes")
        d = self.cfg.data
        if d.encoding == "graph_edges":
            # every problem's nodes must have ids among the model's data.node_ids: one error naming the
            # file and the record, before a model is built
            edges = GraphEdgesEncoding(d.node_ids)
            for i, record in enumerate(self.train_records):
                edges.check_nodes(record, d.train or "data.train", f"record {i}")
            edges.encode_all(self.valid_records, d.valid or "data.valid")
        method_class(self.cfg.method.name).check_config(self.cfg)

    def _check_context(self) -> None:
        """The longest problems, rendered as every epoch will render them, must fit the model's positions;
        otherwise the failure would be an index error deep inside the position embedding."""
        from ..inference.generate import context_length

        context = context_length(self.model)
        if context is None or not self.train_tokens:
            return
        size = lambda r: len(r.question) + sum(map(len, r.steps)) + len(r.answer) + len(r.latent)  # noqa: E731
        longest = sorted(self.train_tokens, key=size)[-5:]
        rng = random.Random(0)
        for epoch in range(self.cfg.train.epochs):
            for record in longest:
                length = self.method.train_example(record, epoch, rng).positions_needed
                if length > context:
                    raise ConfigError(f"config key 'model.n_positions': the model holds {context} positions, but "
                                     f"training problems take up to {length} tokens (epoch {epoch + 1}); raise it")

    def _checkpoint_to_resume(self) -> ckpt.Resumable | None:
        """The newest checkpoint that loads, read once here for :meth:`_resume`. Newer ones with a damaged
        file are named, moved aside as ``corrupt_<name>`` so nothing picks them up again, and skipped.

        Any other error propagates and moves nothing. Nor does a run whose checkpoints all fail: starting
        from step 0 would write over them, so that takes ``train.resume=false``."""
        found = ckpt.checkpoint_candidates(self.output_dir)
        bad: list[tuple[Path, str]] = []
        chosen = None
        for path in reversed(found):
            try:
                chosen = ckpt.read_checkpoint(path, map_location=self.device)
                break
            except runs.CheckpointError as err:
                bad.append((path, str(err)))
        if found and chosen is None:
            listed = "; ".join(f"{path.name}: {reason}" for path, reason in bad)
            raise runs.CheckpointError(
                f"no checkpoint in {self.output_dir / 'checkpoints'} loads ({listed}); they are left as they are: "
                "repair or move them, or set train.resume=false to start over from step 0 (it writes over them)")
        barrier(self.dist)  # every process has read before any file moves
        if self.dist.is_main:
            for path, reason in bad:
                aside = ckpt.quarantine(path)
                log.warning(f"warning: skipping checkpoint {path.name}: {reason}; moved aside to {aside}")
            if bad:
                log.info(f"resuming from the newest checkpoint that loads: {chosen.path}")
        barrier(self.dist)
        return chosen

    def _build_model(self, resume_from: Path | None):
        cfg = self.cfg
        method_tokens = METHOD_TOKENS + method_class(cfg.method.name).extra_tokens(cfg.method)
        pairs = cfg.data.encoding == "graph_edges"
        if resume_from is not None:
            # The checkpoint holds the vocabulary and weights; building from config first would retrain
            # the tokenizer for nothing.
            model, tokenizer = load_checkpoint_model(resume_from, cfg.model.dtype)
        elif cfg.train.init_from:
            model, tokenizer = load_checkpoint_model(runs.resolve_run(cfg.train.init_from), cfg.model.dtype)
            add_method_tokens(tokenizer, method_tokens)
            resize_for_tokenizer(model, tokenizer, cfg.model.init_new_tokens_from or None)
        else:
            # Every vocabulary gets all method tokens, so a cot checkpoint can seed a coconut run. A
            # graph_edges tokenizer learns every node id as a word, and gets its pair tokens whole below.
            words = (GraphEdgesEncoding(cfg.data.node_ids).tokenizer_records(self.train_records) if pairs
                     else self.train_records)
            model, tokenizer = build_model_and_tokenizer(cfg.model, cfg.tokenizer, words, method_tokens)
        # Before the method's own (prepare_model): latentcot's submodules come in one order
        # (models.factory.ATTACHED_MODULES) whether a model is built or loaded, and so do the parameters its
        # optimizer state follows.
        if pairs:
            prepare_pair_model(model, tokenizer, cfg.data.node_ids,
                               where=f"the tokenizer of {resume_from or cfg.train.init_from or 'this run'}")
        elif pair_embedding(model) is not None:
            log.warning(f"note: {cfg.train.init_from}: its pair embedding is dropped (data.encoding is not graph_edges)")
            detach_pair_embedding(model)
        return model.to(self.device), tokenizer

    def _new_optimizer(self) -> torch.optim.Optimizer:
        t = self.cfg.train
        # On a GPU, the fused kernel (one launch for every parameter) unless FSDP shards them; on the
        # CPU the for-loop, which measured as fast as foreach and fused there (docs/prosqa_full_cpu.md)
        gpu = self.device.type == "cuda"
        return torch.optim.AdamW(self.trainable_parameters(), lr=t.lr, betas=tuple(t.adam_betas), weight_decay=t.weight_decay,
                                 fused=gpu and not self.sharded or None, foreach=gpu and self.sharded or None)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The model's parameters, then those of the method's side modules (SIM-CoT's step decoder)."""
        params = list(self.model.parameters())
        for module in self.method.side_modules.values():
            params += list(module.parameters())
        return params

    def _autocast(self):
        return autocast_for(self.cfg.train.precision, self.device)

    def _resume(self, resuming: ckpt.Resumable) -> None:
        state, saved, latest = resuming.state, resuming.optimizer, resuming.path
        self.state = TrainState(epoch=state["epoch"], step=state["step"], history=state.get("history", []),
                                batch=state.get("batch", 0), epoch_losses=state.get("epoch_losses", []))
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(self.model, self.optimizer, optim_state_dict=saved,
                                     options=StateDictOptions(full_state_dict=True))
        else:
            self.optimizer.load_state_dict(saved)
        set_rng_state(resuming.rng)
        self.metrics.truncate_after_step(self.state.step)
        if self.dist.is_main:
            inside = f", batch {self.state.batch} of epoch {self.state.epoch + 1}" if self.state.batch else ""
            log.info(f"resumed from {latest} (epoch {self.state.epoch}, step {self.state.step}{inside})")

    def _full_state(self) -> tuple[dict | None, dict]:
        """Model and optimizer state to save; under FSDP every process takes part in gathering them."""
        if not self.sharded:
            return None, self.optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return (get_model_state_dict(self.model, options=options),
                get_optimizer_state_dict(self.model, self.optimizer, options=options))

    # -- data --------------------------------------------------------------------------------------
    def epoch_records(self, epoch: int) -> list[TokenizedRecord]:
        """The training problems of this epoch: all of them, or the epoch's window of ``data.epoch_size``;
        with ``data.shuffle_graph``/``relabel_nodes`` written anew for this epoch (the same on every
        process and after a resume: the RNG is the seed's and the epoch's)."""
        total, size = len(self.train_tokens), self.epoch_size
        start = (epoch * size) % total
        window = range(total) if size >= total else [(start + i) % total for i in range(size)]
        if not self.augmenting:
            return self.train_tokens if size >= total else [self.train_tokens[i] for i in window]
        rng = random.Random(self.cfg.seed * 1_000_003 + epoch + 15_485_863)
        data = self.cfg.data
        # graph_edges relabels into all of the model's node ids, the graph encoding into the problem's own
        node_ids = data.node_ids if data.encoding == "graph_edges" else None
        records = [augment_graph(self.train_records[i], rng, data.shuffle_graph, data.relabelling(), node_ids)
                   for i in window]
        return tokenize_records(self.method.with_training_targets(records), self.tokenizer)

    def epoch_examples(self, epoch: int) -> list[Example]:
        """This epoch's rendered problems in this epoch's order; identical on every process."""
        seed = self.cfg.seed * 1_000_003 + epoch
        render_rng = random.Random(seed)
        examples = [self.method.train_example(r, epoch, render_rng) for r in self.epoch_records(epoch)]
        random.Random(seed + 7919).shuffle(examples)
        return examples

    def global_batches(self, examples: list[Example], epoch: int = 0) -> list[list[Example]]:
        size, window = self.cfg.train.batch_size, self.cfg.train.bucket_batches
        # A ragged last batch is dropped: every step then averages over the same number of problems.
        batches = [examples[i:i + size] for i in range(0, len(examples) - size + 1, size)] or [examples]
        if window <= 1 or len(batches) < 2:
            return batches
        # Length bucketing: inside each run of `window` batches of the shuffled epoch, problems of
        # similar length go together (less padding), then the batches are shuffled again so that
        # lengths do not drift through the epoch.
        kept = [e for batch in batches for e in batch]
        bucketed = []
        for lo in range(0, len(kept), size * window):
            group = sorted(kept[lo:lo + size * window], key=lambda e: len(e.input_ids))
            bucketed += [group[i:i + size] for i in range(0, len(group), size)]
        random.Random(self.cfg.seed * 1_000_003 + epoch + 104_729).shuffle(bucketed)
        return bucketed

    def micro_batches(self, batch: list[Example]) -> list[list[Example]]:
        mine = batch[self.dist.rank::self.dist.world_size]
        size = self.cfg.train.micro_batch_size or len(mine)
        return [mine[i:i + size] for i in range(0, len(mine), size)]

    # -- one step, one epoch -----------------------------------------------------------------------
    def train_step(self, batch: list[Example]) -> float:
        """One optimizer step on a global batch; returns its mean token loss."""
        total_tokens = max(sum(label_count(e) for e in batch), 1)
        # Each of the method's own loss terms (the halting head's, CODI's teacher and distillation, SIM-CoT's
        # step decoder) is a mean over its own denominator in the whole batch, weighted against the token mean.
        weights = {name: w for name, w in self.method.loss_weights().items() if w}
        totals = {name: max(sum(e.loss_counts.get(name, 0) for e in batch), 1) for name in weights}
        self.model.train()
        for module in self.method.side_modules.values():
            module.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        term_sums = dict.fromkeys(weights, 0.0)
        for micro in self.micro_batches(batch):
            tensors = self.method.collate(micro, self.tokenizer.pad_token_id)
            tensors = {k: v.to(self.device) for k, v in tensors.items()}
            with self.autocast():
                parts = self.method.batch_loss(self.model, tensors)
            loss = parts.lm_sum / total_tokens
            for name, value in parts.terms.items():
                if name in weights:
                    loss = loss + weights[name] * value / totals[name]
                    term_sums[name] += value.item()
            # FSDP averages the sharded gradients over processes; scaling by the process count turns
            # that average into the sum the normalisation needs.
            (loss * self.dist.world_size if self.sharded else loss).backward()
            loss_sum += parts.lm_sum.item()
        params = [p for p in self.trainable_parameters() if p.requires_grad]
        replicated = [p for p in params if not is_sharded(p)]
        sum_gradients(replicated, self.dist)
        if self.sharded:
            for p in replicated:
                if p.grad is not None:
                    p.grad.div_(self.dist.world_size)
        t = self.cfg.train
        lr = lr_at(self.state.step, self.total_steps, t.lr, t.lr_schedule, t.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.cfg.train.grad_clip > 0:
            clip_grad_norm(params, self.cfg.train.grad_clip, self.dist)
        self.optimizer.step()
        if self.dist.enabled:
            summed = torch.tensor([loss_sum, *term_sums.values()], device=self.device, dtype=torch.float64)
            torch.distributed.all_reduce(summed)
            loss_sum, *sums = summed.tolist()
            term_sums = dict(zip(term_sums, sums))
        self.last_terms = {f"{name}_loss": value / totals[name] for name, value in term_sums.items()}
        return loss_sum / total_tokens

    def train_epoch(self, epoch: int) -> float:
        stage = self.method.stage_at(epoch)
        done = self.state.batch  # > 0 when resuming inside this epoch
        # A mid-epoch checkpoint already holds the optimizer this epoch started with.
        if self.method.reset_optimizer_at(epoch) and done == 0:
            self.optimizer = self._new_optimizer()
        # The epoch's batches are a function of the epoch alone, so a resumed epoch skips exactly the
        # batches its checkpoint had done.
        batches = self.global_batches(self.epoch_examples(epoch), epoch)
        bar = progress_bar(desc=f"epoch {epoch + 1}/{self.cfg.train.epochs} stage {stage}", initial=done,
                           total=len(batches), unit="batch", enabled=self.cfg.train.progress and self.dist.is_main)
        start = time.perf_counter()
        for batch in batches[done:]:
            if self._stop_requested():
                bar.close()
                # nothing new since the checkpoint this epoch resumed from (or the previous epoch's) otherwise
                self._stop(self.save_progress(epoch) if self.state.batch > done else None)
            loss = self.train_step(batch)
            self.state.epoch_losses.append(loss)
            self.state.batch += 1
            self.state.step += 1
            bar.update()
            bar.set_postfix(loss=f"{loss:.4f}")
            if self.state.step % max(self.cfg.train.log_every, 1) == 0:
                self.metrics.log("train", self.state.step, epoch=epoch, stage=stage, loss=loss, **self.last_terms,
                                 lr=self.optimizer.param_groups[0]["lr"], elapsed=round(time.perf_counter() - start, 3))
            if self.state.batch < len(batches) and self._mid_epoch_save_due():
                self.save_progress(epoch)
        bar.close()
        losses = self.state.epoch_losses
        mean = sum(losses) / max(len(losses), 1)
        self.state.batch, self.state.epoch_losses = 0, []
        self.metrics.log("epoch", self.state.step, epoch=epoch, stage=stage, train_loss=mean,
                         seconds=round(time.perf_counter() - start, 2))
        return mean

    def evaluate(self, epoch: int) -> dict | None:
        # Sharded blocks need every process in each forward pass, so under FSDP all of them generate.
        if not self.valid_records or not (self.dist.is_main or self.sharded):
            return None
        from ..evaluation import evaluate, method_metrics

        result = evaluate(self.model, self.tokenizer, self.method, self.valid_records,
                          batch_size=self.cfg.train.eval_batch_size, progress=self.cfg.train.progress,
                          encoding=self.encoding, n_thoughts=self.method.eval_thoughts(epoch))
        summary = result.summary()
        summary.update(method_metrics(self.model, self.tokenizer, self.method, self.valid_records, epoch,
                                      self.encoding, self.cfg.train.eval_batch_size))
        self.metrics.log("eval", self.state.step, epoch=epoch, stage=self.method.stage_at(epoch), **summary)
        return summary

    def _mid_epoch_save_due(self) -> bool:
        t = self.cfg.train
        due = bool(t.save_every_steps) and self.state.step % t.save_every_steps == 0
        if t.save_every_minutes > 0:
            late = time.monotonic() - self._last_save >= 60 * t.save_every_minutes
            if self.dist.enabled:
                # Clocks differ between processes; all must agree, since saving gathers from each of them.
                flag = torch.tensor([float(late)], device=self.device)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                late = bool(flag.item())
            due = due or late
        return due

    def _write_checkpoint(self, completed: int, stage: int, mid_epoch: bool) -> Path | None:
        barrier(self.dist)
        path = None
        model_state, optimizer_state = self._full_state()
        if self.dist.is_main:
            state = {"epoch": completed, "step": self.state.step, "stage": stage, "history": self.state.history}
            if mid_epoch:
                state.update(batch=self.state.batch, epoch_losses=self.state.epoch_losses)
            path = ckpt.save_checkpoint(self.output_dir, completed, self.model, self.tokenizer, optimizer_state,
                                        self.cfg, state, keep=self.cfg.train.keep_checkpoints,
                                        model_state=model_state, step=self.state.step if mid_epoch else None,
                                        side_modules=self.method.side_modules)
        barrier(self.dist)
        self._last_save = time.monotonic()
        return path

    def save(self, epoch: int, summary: dict) -> Path | None:
        """The checkpoint at the end of (0-based) ``epoch``."""
        return self._write_checkpoint(epoch + 1, self.method.stage_at(epoch), mid_epoch=False)

    def save_progress(self, epoch: int) -> Path | None:
        """A checkpoint inside (0-based) ``epoch``, after ``state.batch`` of its batches."""
        return self._write_checkpoint(epoch, self.method.stage_at(epoch), mid_epoch=True)

    # -- stopping on a signal ------------------------------------------------------------------------
    def _stop_requested(self) -> bool:
        asked = self._stops is not None and self._stops.requested
        if self.dist.enabled:
            # Every process must stop at the same step: saving gathers from all of them.
            flag = torch.tensor([float(asked)], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            asked = bool(flag.item())
        return asked

    def _stop(self, checkpoint: Path | None) -> None:
        self.metrics.close()
        stops = self._stops
        name = stops.signal.name if stops and stops.signal else "request"
        raise TrainingStopped(name, checkpoint or runs.latest_checkpoint(self.output_dir),
                              stops.exit_code if stops else 143)

    # -- the whole run -----------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        with StopRequests(announce=self.dist.is_main) as self._stops:
            try:
                return self._fit()
            finally:
                self._stops = None

    def _fit(self) -> list[dict]:
        if self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.output_dir / "config.yaml")
        every = self.cfg.train.eval_every
        for epoch in range(self.state.epoch, self.cfg.train.epochs):
            train_loss = self.train_epoch(epoch)
            summary = {"epoch": epoch + 1, "stage": self.method.stage_at(epoch), "train_loss": round(train_loss, 5)}
            if every and ((epoch + 1) % every == 0 or epoch + 1 == self.cfg.train.epochs):
                summary.update(self.evaluate(epoch) or {})
            self.state.history.append(summary)
            self.state.epoch = epoch + 1
            self.save(epoch, summary)
            if self.dist.is_main:
                log.info(" ".join(f"{k}={v}" for k, v in summary.items()))
            if self.on_epoch_end is not None:
                self.on_epoch_end(self, epoch)
            if epoch + 1 < self.cfg.train.epochs and self._stop_requested():
                self._stop(None)
        self.metrics.close()
        return self.state.history


def train(cfg: Config, **kwargs) -> Trainer:
    trainer = Trainer(cfg, **kwargs)
    trainer.fit()
    return trainer


__all__ = ["Trainer", "TrainState", "TrainingStopped", "train", "label_count"]
