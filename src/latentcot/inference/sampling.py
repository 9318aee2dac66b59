"""Inference-time scaling for latent models: N perturbed latent trajectories per problem, one question pass.

LatentTTS (2025) samples a continuous-thought model by perturbing the latents it feeds back, with dropout or
Gaussian noise, and picks among the answers. Here each of a problem's N samples feeds back its latents
perturbed (:class:`LatentSampling`), and all of them continue one cache of the question: the columns before
the first thought (the question and ``<bot>``) run once per problem, the cache is repeated N times, and only
the thoughts, ``<eot>`` and the answer run per sample, through the method's own cached pass
(:meth:`~latentcot.methods.Method.forward_hidden` with ``previous``), then greedy decoding as in
:func:`~latentcot.inference.generate.generate`.

The perturbation of sample s of problem p at thought j is the j-th draw of a generator seeded by (seed, p, s),
so the samples do not depend on the batch size or order. Sample 0 with no perturbation is the greedy answer.

Cost: ``Generation.forward_passes`` of sample 0 counts the shared question pass and its own calls; the other
samples count only their own (the thought steps, ``<eot>``, one per written token after the first), so the
sum over a problem's samples is what it cost.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from ..data.records import Record
from ..errors import UsageError
from ..methods import Example, Method, continuous_thoughts, tokenize_records
from ..models.continuous import collate, thought_columns
from ..progress import progress_bar
from .generate import (EvalMode, Generation, _decode_greedy, _decode_text, _fit_to_context, _model_device,
                       _resolve_limits, _sync, wants_auto)


DRAW_BLOCK = 8  # thoughts whose perturbations one call draws


def stable_seed(*parts: int) -> int:
    """A generator seed from integers, the same in every process (Python's hash is not: hash(-1) == hash(-2))."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2 ** 63 - 1)


@dataclass(frozen=True)
class LatentSampling:
    """How many samples per problem and how each perturbs the latents it feeds back.

    ``noise``: Gaussian noise added to each fed-back latent, its expected norm ``noise`` times the latent's own
    (a relative scale, so one value fits models whose latents differ in size). ``dropout``: each coordinate
    zeroed with probability ``dropout``, the rest scaled by 1 / (1 - dropout), as training-time dropout does.
    """

    samples: int = 1
    noise: float = 0.0
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.samples < 1:
            raise UsageError(f"--samples must be at least 1, got {self.samples}")
        if not (self.noise >= 0 and math.isfinite(self.noise)):
            raise UsageError(f"--latent-noise must be a finite number >= 0, got {self.noise}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--latent-dropout must be in [0, 1), got {self.dropout}")
        if self.samples > 1 and not self.perturbs:
            raise UsageError(f"--samples {self.samples} needs --latent-noise or --latent-dropout: without either, "
                             "every sample is the greedy answer")

    @property
    def perturbs(self) -> bool:
        return self.noise > 0 or self.dropout > 0

    def _stream(self, problem: int, sample: int) -> torch.Generator:
        return torch.Generator().manual_seed(stable_seed(self.seed, problem, sample))

    def _draw(self, stream: torch.Generator, d: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The draws of the next ``DRAW_BLOCK`` thoughts from a sample's stream, always in this order: dropout's
        keep masks, then the noise (one call each, not one per thought: a batch has thousands of rows)."""
        shape = (DRAW_BLOCK, d)
        keep = torch.rand(shape, generator=stream, dtype=torch.float64) >= self.dropout if self.dropout else None
        z = torch.randn(shape, generator=stream, dtype=torch.float64) if self.noise else None
        return keep, z

    def _apply(self, latent: torch.Tensor, keep: torch.Tensor | None, z: torch.Tensor | None) -> torch.Tensor:
        """(rows, d) latents perturbed by their rows' draws, computed in float64."""
        x = latent.detach().double()
        if keep is not None:
            x = x * keep.to(x.device) / (1 - self.dropout)
        if z is not None:
            scale = self.noise * latent.detach().double().norm(dim=-1, keepdim=True) / math.sqrt(latent.shape[-1])
            x = x + scale * z.to(x.device)
        return x.to(latent.dtype)

    def perturbation(self, problem: int, sample: int, thought: int, latent: torch.Tensor) -> torch.Tensor:
        """``latent`` (d,) of one row, perturbed as this sample's draw for this thought: the thought-th draw of
        the stream seeded by (seed, problem, sample)."""
        stream = self._stream(problem, sample)
        for _ in range(thought // DRAW_BLOCK + 1):
            keep, z = self._draw(stream, latent.shape[-1])
        at = thought % DRAW_BLOCK
        return self._apply(latent[None], None if keep is None else keep[at:at + 1],
                           None if z is None else z[at:at + 1])[0]

    def edit(self, problems: Sequence[int]):
        """The ``edit(j, latent)`` of a batch whose rows are ``problems`` (indices in the file), each repeated
        ``samples`` times in a row; None when nothing is perturbed."""
        return self.edit_rows([(p, s) for p in problems for s in range(self.samples)])

    def edit_rows(self, rows: Sequence[tuple[int, int]]):
        """The ``edit(j, latent)`` of a batch whose row r is sample ``rows[r][1]`` of problem ``rows[r][0]``; None
        when nothing is perturbed. Each row's draws are made once and kept, so a pass that feeds a thought again
        (PCCoT's iterations) feeds it the same perturbation."""
        if not self.perturbs:
            return None
        streams: dict[int, torch.Generator] = {}
        drawn: dict[int, list] = {}

        def perturb(j: int, latent: torch.Tensor) -> torch.Tensor:
            keeps, zs = [], []
            block, at = divmod(j, DRAW_BLOCK)
            for r in range(latent.shape[0]):
                if r not in streams:
                    streams[r], drawn[r] = self._stream(*rows[r]), []
                while len(drawn[r]) <= block:
                    drawn[r].append(self._draw(streams[r], latent.shape[-1]))
                keep, z = drawn[r][block]
                keeps.append(None if keep is None else keep[at])
                zs.append(None if z is None else z[at])
            keep = torch.stack(keeps) if self.dropout else None
            z = torch.stack(zs) if self.noise else None
            return self._apply(latent[:, 0], keep, z)[:, None]

        return perturb


class _CallCounter:
    """Counts calls of the base model (a forward pre-hook) while it is on."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self.handle = module.register_forward_pre_hook(self._count)

    def _count(self, *_):
        self.calls += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def require_latents(method: Method) -> None:
    """One clear error for a method with nothing to perturb (checked before any work)."""
    continuous_thoughts(method, "sampling latent trajectories (--samples, --latent-noise, --latent-dropout)")


def check_sampling_call(method: Method, sampling: LatentSampling, n_thoughts: int | str | None = None,
                        max_new_tokens: int | None = None) -> tuple[int, int]:
    """Everything about a sampling call that can be refused before any work; returns the thought count and the
    new-token limit."""
    require_latents(method)
    if wants_auto(method, n_thoughts):
        raise UsageError("sampling latent trajectories needs a fixed thought count, not adaptive thinking "
                         "(give --n-thoughts K)")
    n, limit = _resolve_limits(method, n_thoughts, max_new_tokens)
    if n == 0 and sampling.perturbs:
        raise UsageError("--latent-noise/--latent-dropout perturb the thoughts, and this call runs 0 thoughts")
    return n, limit


@torch.no_grad()
def _sample_batch(model: PreTrainedModel, method: Method, examples: Sequence[Example], sampling: LatentSampling,
                  problems: Sequence[int], max_new_tokens: int, pad_id: int, eos_id: int, device: torch.device
                  ) -> tuple[list[list[int]], int]:
    """Token ids per row (problem-major: each problem's samples in a row) and the model calls each sample made
    after the shared question pass."""
    batch = collate(examples, pad_id, method.thought_id, align="end")
    input_ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    thought_mask = batch["thought_mask"].to(device) if "thought_mask" in batch else None
    width = input_ids.shape[1]
    has_thoughts = thought_mask is not None and bool(thought_mask.any())
    start = thought_columns(thought_mask)[0] if has_thoughts else width
    hidden, cache = method.forward_hidden(model, input_ids[:, :start], mask[:, :start], None,
                                          DynamicCache(config=model.config))[:2]
    n = sampling.samples
    if n > 1:
        cache.batch_repeat_interleave(n)
    mask = mask.repeat_interleave(n, 0)
    last = hidden[:, -1:].repeat_interleave(n, 0)
    edit, fed = sampling.edit(problems), []
    if edit is not None:
        def tracked(j, latent, perturb=edit):
            fed.append(j)
            return perturb(j, latent)
        edit = tracked
    with _CallCounter(model.base_model) as counter:
        if start < width:
            hidden, cache = method.forward_hidden(
                model, input_ids[:, start:].repeat_interleave(n, 0), mask, thought_mask[:, start:].repeat_interleave(
                    n, 0), cache, previous=last, edit=edit)[:2]
            last = hidden[:, -1:]
    if edit is not None and has_thoughts and not fed:
        raise UsageError(f"{method.name}'s pass feeds no latent back here (its thoughts are placeholders, e.g. "
                         "pccot with method.jacobi_iterations=0): there is nothing for --latent-noise or "
                         "--latent-dropout to perturb")
    return _decode_greedy(model, last[:, 0], cache, mask, max_new_tokens, pad_id, eos_id), counter.calls


def generate_samples(model: PreTrainedModel, tokenizer, method: Method, records: Sequence[Record],
                     sampling: LatentSampling, batch_size: int = 32, n_thoughts: int | None = None,
                     max_new_tokens: int | None = None, progress: bool = False) -> list[list[Generation]]:
    """``sampling.samples`` answers per problem, in input order, each with its latents perturbed.

    ``batch_size`` counts sequences, as in :func:`~latentcot.inference.generate.generate` (so memory is the
    same): a batch holds ``batch_size // samples`` problems (at least one). Continuous-thought methods only
    (Coconut, CODI, PCCoT); a fixed thought count, not adaptive thinking.
    """
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    n, limit = check_sampling_call(method, sampling, n_thoughts, max_new_tokens)
    if not records:
        return []
    device = _model_device(model)
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    examples = [method.prompt(r, n) for r in tokenize_records(records, tokenizer)]
    limit = _fit_to_context(model, examples, n, limit, max_new_tokens is not None)
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    per_batch = max(1, batch_size // sampling.samples)
    chunks = [order[i:i + per_batch] for i in range(0, len(order), per_batch)]
    if progress:
        chunks = progress_bar(chunks, desc=f"generate x{sampling.samples}", unit="batch")
    results: list[list[Generation]] = [[] for _ in records]
    with EvalMode(model):
        for chunk in chunks:
            _sync(device)
            begin = time.perf_counter()
            token_lists, calls = _sample_batch(model, method, [examples[i] for i in chunk], sampling, chunk, limit,
                                               pad_id, eos_id, device)
            _sync(device)
            seconds = (time.perf_counter() - begin) / len(token_lists)
            for row, ids in enumerate(token_lists):
                problem, sample = chunk[row // sampling.samples], row % sampling.samples
                thoughts = examples[problem].n_thoughts
                # the question pass is shared: sample 0 carries it
                passes = (1 if sample == 0 else 0) + calls + len(ids) - 1
                results[problem].append(Generation(
                    text=_decode_text(tokenizer, ids, eos_id), token_ids=ids, n_thoughts=thoughts,
                    generated_tokens=thoughts + len(ids), forward_passes=passes, seconds=seconds))
    return results
