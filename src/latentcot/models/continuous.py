"""The continuous-thought forward pass (Coconut), shared by training and inference.

A thought position takes as its input embedding the final hidden state (after the last layer norm) of
the position before it. Because every thought depends on the one before, thoughts are computed one at
a time; the KV cache is what keeps that cheap (see :func:`forward_hidden`).
"""

from __future__ import annotations

import inspect

from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel

from ..examples import IGNORE_INDEX, Example
from .halting import IGNORE_TARGET, decision_count, decision_targets, halting_loss_sum
from .projection import feedback

ALIGN_MODES = ("thoughts", "end", "right")


def collate(examples: Sequence[Example], pad_id: int, thought_id: int | None, align: str = "thoughts"
            ) -> dict[str, torch.Tensor]:
    """Pad a batch into tensors.

    ``align="thoughts"`` left-pads rows so the first thought of every row sits in the same column, which
    lets one cached step per thought serve the whole batch; ``"end"`` left-pads so prompts end together
    (generation); ``"right"`` is ordinary right padding.
    """
    if align not in ALIGN_MODES:
        raise ValueError(f"align must be one of {ALIGN_MODES}, got {align!r}")
    if align == "thoughts" and any(e.thought_start >= 0 for e in examples):
        anchor = max(e.thought_start for e in examples if e.thought_start >= 0)
        left = [anchor - e.thought_start if e.thought_start >= 0 else 0 for e in examples]
    elif align == "end":
        longest = max(len(e.input_ids) for e in examples)
        left = [longest - len(e.input_ids) for e in examples]
    else:
        left = [0] * len(examples)
    width = max(pad + len(e.input_ids) for pad, e in zip(left, examples))
    batch = len(examples)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)
    for row, (pad, example) in enumerate(zip(left, examples)):
        n = len(example.input_ids)
        input_ids[row, pad:pad + n] = torch.tensor(example.input_ids)
        labels[row, pad:pad + n] = torch.tensor(example.labels)
        attention_mask[row, pad:pad + n] = 1
    out = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if thought_id is not None:
        out["thought_mask"] = (input_ids == thought_id) & attention_mask.bool()
    if thought_id is not None and any(e.halt_from >= 0 for e in examples):
        out["halt_targets"] = halting_target_tensor(examples, left, width)
    if thought_id is not None and any(e.thought_targets for e in examples):
        out["thought_targets"] = thought_target_tensor(examples)
        forced = {e.teacher_forced for e in examples}
        if len(forced) > 1:
            raise ValueError("a batch mixes teacher-forced and free-running problems; the method decides per epoch")
        out["teacher_forced"] = torch.tensor(forced.pop())
    return out


def thought_target_tensor(examples: Sequence[Example]) -> torch.Tensor:
    """(batch, thoughts, members) token ids of each thought's target set, -1 where there is none; thought j
    of a row is the j-th column of the (aligned) thought block."""
    targets = [e.thought_targets or [] for e in examples]
    thoughts = max(len(t) for t in targets)
    members = max((len(s) for t in targets for s in t), default=1) or 1
    out = torch.full((len(examples), thoughts, members), -1, dtype=torch.long)
    for row, sets in enumerate(targets):
        for j, ids in enumerate(sets):
            out[row, j, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def halting_target_tensor(examples: Sequence[Example], left: Sequence[int], width: int) -> torch.Tensor:
    """(batch, width) halting targets: decision j of a row sits at its ``halt_from + j`` (``<bot>``, then
    each thought), j = 0 .. its thought count; every other position is ``IGNORE_TARGET``."""
    targets = torch.full((len(examples), width), IGNORE_TARGET)
    for row, (pad, example) in enumerate(zip(left, examples)):
        if example.halt_from < 0:
            continue
        start = pad + example.halt_from
        values = decision_targets(decision_count(example.n_thoughts), example.halt_needed)
        targets[row, start:start + len(values)] = torch.tensor(values)
    return targets


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    # GPT-2 would count padding as positions; real tokens must start at 0 whatever the padding.
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def thought_columns(thought_mask: torch.Tensor, after: bool = False) -> tuple[int, int]:
    """The contiguous block of columns that hold thoughts in at least one row (``after``: the columns continue
    a cached sequence, so a thought may sit in the first)."""
    columns = thought_mask.any(0).nonzero().flatten()
    start, end = int(columns[0]), int(columns[-1]) + 1
    if len(columns) != end - start:
        raise ValueError("continuous thoughts must form one contiguous block of columns; "
                         "collate the batch with align='thoughts'")
    if start == 0 and not after:
        raise ValueError("a continuous thought needs a position before it (e.g. <bot>)")
    return start, end


def cache_argument(base: torch.nn.Module, cache) -> dict:
    """The KV cache as the model's forward takes it: ``cache=`` in recent transformers (which warn on the
    older ``past_key_values=``), ``past_key_values=`` before."""
    takes = _CACHE_KEYWORD.get(type(base))
    if takes is None:
        takes = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        _CACHE_KEYWORD[type(base)] = takes
    return {takes: cache}


def returned_cache(out):
    """The cache a forward returned, under either name."""
    return out["cache"] if "cache" in out else out.past_key_values


_CACHE_KEYWORD: dict[type, str] = {}


# edit(j, latent): what thought j of the block is fed instead of ``latent`` ((batch, 1, d) each)
LatentEdit = Callable[[int, torch.Tensor], torch.Tensor]


class Hidden(NamedTuple):
    """What a continuous-thought pass returns: final hidden states of every position, the cache (when one is
    used) and, when asked for, every layer's states (``hidden_states`` of HuggingFace: the embedding output,
    then one per block, the last after the final norm)."""

    hidden: torch.Tensor
    cache: DynamicCache | None
    layers: tuple[torch.Tensor, ...] | None = None
    # (batch, block, d) for the thought block's columns: the inputs the thoughts were fed, and the final
    # hidden states they were made from (the same before a projection; what the LM head can read)
    latents: torch.Tensor | None = None
    latent_sources: torch.Tensor | None = None


class _Chunks:
    """Runs the base model over consecutive column ranges into one cache and keeps what each call returned."""

    def __init__(self, model: PreTrainedModel, attention_mask: torch.Tensor, positions: torch.Tensor,
                 cache: DynamicCache, layers: bool, past: int = 0):
        # columns lo..hi of the input are columns past+lo..past+hi of the mask and the positions
        self.base, self.cache, self.layers = model.base_model, cache, layers
        self.mask, self.positions = attention_mask[:, past:], positions[:, past:]
        self.past_mask = attention_mask[:, :past]
        self.hidden: list[torch.Tensor] = []
        self.layer_chunks: list[tuple[torch.Tensor, ...]] = []

    def run(self, lo: int, hi: int, inputs: torch.Tensor, keep: bool = True) -> torch.Tensor:
        out = self.base(inputs_embeds=inputs, attention_mask=torch.cat([self.past_mask, self.mask[:, :hi]], dim=1),
                        position_ids=self.positions[:, lo:hi],
                        use_cache=True, output_hidden_states=self.layers and keep,
                        **cache_argument(self.base, self.cache))
        if keep:
            self.hidden.append(out.last_hidden_state)
            if self.layers:
                self.layer_chunks.append(tuple(out.hidden_states))
        return out.last_hidden_state

    def result(self, latents: torch.Tensor | None = None, sources: torch.Tensor | None = None) -> Hidden:
        layers = None
        if self.layers:
            layers = tuple(torch.cat(parts, dim=1) for parts in zip(*self.layer_chunks))
        return Hidden(torch.cat(self.hidden, dim=1), self.cache, layers, latents, sources)


def forward_hidden(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    thought_mask: torch.Tensor | None = None,
    cache: DynamicCache | None = None,
    return_layers: bool = False,
    previous: torch.Tensor | None = None,
    edit: LatentEdit | None = None,
) -> Hidden:
    """Final hidden states for every position, thoughts filled in; returns the cache when one is used.

    ``edit(j, latent)`` replaces what thought j of the block (0-based) is fed, (batch, 1, d), before it is fed:
    the hook interventions on the latents use (zero, mean, noise, swap), so that they run through this pass.

    ``previous`` continues a sequence the cache already holds: ``input_ids`` are the new columns only,
    ``attention_mask`` covers the cached columns and the new ones, and ``previous`` (batch, 1, d) is the final
    hidden state of the position before the new columns, which a thought in the first new column is fed.
    Adaptive thinking advances this way one column at a time (:mod:`latentcot.inference.generate`).

    Work: one pass over the columns before the first thought, one single-column step per thought (its
    input is the hidden state the previous step just produced, through the model's latent projection if it
    has one; rows without a thought in that column use their token embedding), then one pass over the
    rest. The cache carries the keys and values of everything already seen, so this costs about one
    forward pass plus one small step per thought, not one full pass per thought, and gradients flow back
    through the cache into every earlier thought.
    """
    base = model.base_model
    embeds = model.get_input_embeddings()(input_ids)
    past = attention_mask.shape[1] - input_ids.shape[1]  # columns the cache already holds
    if past and (cache is None or previous is None):
        raise ValueError("an attention mask wider than the input continues a cached sequence: pass its cache "
                         "and the hidden state before the new columns (previous)")
    positions = position_ids(attention_mask)
    if thought_mask is None or not bool(thought_mask.any()):
        out = base(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions[:, past:],
                   use_cache=cache is not None, output_hidden_states=return_layers, **cache_argument(base, cache))
        return Hidden(out.last_hidden_state, returned_cache(out) if cache is not None else None,
                      tuple(out.hidden_states) if return_layers else None)

    start, end = thought_columns(thought_mask, after=previous is not None)
    chunks = _Chunks(model, attention_mask, positions, cache if cache is not None else DynamicCache(config=model.config),
                     return_layers, past)
    project = feedback(model)
    hidden = chunks.run(0, start, embeds[:, :start]) if start else previous
    latents, sources = [], []
    for col in range(start, end):
        is_thought = thought_mask[:, col, None, None]
        sources.append(hidden[:, -1:])
        latent = project(hidden[:, -1:]).to(embeds.dtype)
        latents.append(edit(col - start, latent) if edit is not None else latent)
        hidden = chunks.run(col, col + 1, torch.where(is_thought, latents[-1], embeds[:, col:col + 1]))
    if end < input_ids.shape[1]:
        chunks.run(end, input_ids.shape[1], embeds[:, end:])
    return chunks.result(torch.cat(latents, dim=1), torch.cat(sources, dim=1))


def jacobi_forward(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    thought_mask: torch.Tensor | None,
    cache: DynamicCache | None = None,
    return_layers: bool = False,
    iterations: int = 3,
    edit: LatentEdit | None = None,
    previous: torch.Tensor | None = None,
) -> Hidden:
    """PCCoT (Wu et al. 2025): all latents updated in parallel by Jacobi iteration, instead of one at a time.

    Pass 0 runs the columns up to the end of the latent block with the placeholders' own embeddings. Each
    of the ``iterations`` that follow re-runs only the latent block over the cached prefix, with latent i
    fed the output of the previous pass at latent i - 1 (latent 0 the output at ``<bot>``), through the
    latent projection if the model has one; the last iteration runs together with the columns after the
    block (``<eot>``, the answer), which therefore attend to the latents it fed. Latent i is exact (equal to
    the sequential pass's) once i < t after t updates, so ``iterations`` equal to the latent count gives
    :func:`forward_hidden`'s latents exactly (``tests/test_latent_methods.py``); fewer trade exactness for passes.
    Gradients flow through every iteration. Every row needs a latent in every column of the block (PCCoT
    gives each problem the same count).

    ``previous`` continues a cached sequence as in :func:`forward_hidden` (``input_ids`` the new columns,
    ``attention_mask`` all of them): samples of one problem share its question's cache this way, the block
    starting in the first new column being fed ``previous`` (the output at ``<bot>``).
    """
    if thought_mask is None or not bool(thought_mask.any()):
        return forward_hidden(model, input_ids, attention_mask, None, cache, return_layers, previous)
    past = attention_mask.shape[1] - input_ids.shape[1]
    if past and (cache is None or previous is None):
        raise ValueError("an attention mask wider than the input continues a cached sequence: pass its cache "
                         "and the hidden state before the new columns (previous)")
    start, end = thought_columns(thought_mask, after=previous is not None)
    if not bool(thought_mask[:, start:end].all()):
        raise ValueError("the Jacobi pass needs the same number of latents in every row, in the same columns")
    embeds = model.get_input_embeddings()(input_ids)
    positions = position_ids(attention_mask)
    cache = cache if cache is not None else DynamicCache(config=model.config)
    project = feedback(model)
    first = _Chunks(model, attention_mask, positions, cache, return_layers, past)
    states = first.run(0, end, embeds[:, :end])
    prefix = first.result()
    if iterations == 0:
        if end < input_ids.shape[1]:
            first.run(end, input_ids.shape[1], embeds[:, end:])
        return first.result(embeds[:, start:end], None)
    at_bot = states[:, start - 1:start] if start else previous
    block = states[:, start:end]
    for t in range(1, iterations + 1):
        # outputs at <bot> and at latents 0 .. n-2 become latents 0 .. n-1
        sources = torch.cat([at_bot, block[:, :-1]], dim=1)
        latents = project(sources).to(embeds.dtype)
        if edit is not None:  # every iteration feeds latent j its edited value
            latents = torch.cat([edit(j, latents[:, j:j + 1]) for j in range(latents.shape[1])], dim=1)
        # a negative count: drop the previous pass's latent block
        cache.crop(past + start - cache.get_seq_length())
        if t < iterations:
            block = first.run(start, end, latents, keep=False)
            continue
        last = _Chunks(model, attention_mask, positions, cache, return_layers, past)
        last.run(start, input_ids.shape[1], torch.cat([latents, embeds[:, end:]], dim=1))
        tail = last.result()
        layers = None
        if return_layers:
            layers = tuple(torch.cat([p[:, :start], q], dim=1) for p, q in zip(prefix.layers, tail.layers))
        return Hidden(torch.cat([prefix.hidden[:, :start], tail.hidden], dim=1), cache, layers, latents, sources)
    raise AssertionError("unreachable")


def lm_loss_sum(model: PreTrainedModel, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy and the number of target tokens.

    The LM head runs only on positions that have a target, which saves most of the logits memory
    when the question is long. Returning a sum lets the trainer normalise by the token count of the
    whole (accumulated, all-process) batch.
    """
    targets = labels[:, 1:]
    selected = targets != IGNORE_INDEX
    logits = model.get_output_embeddings()(hidden[:, :-1][selected])
    # at least float32 (bf16 logits lose the loss), but a float64 model keeps float64
    loss = F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), targets[selected],
                           reduction="sum")
    return loss, int(selected.sum())


class BatchLoss(NamedTuple):
    """Summed losses of one collated batch. The trainer divides ``lm_sum`` by the target tokens of the whole
    (accumulated, all-process) batch, and each named term of ``terms`` by that batch's total of the examples'
    ``loss_counts`` under the same name (the halting head's ``halt``: its decisions; CODI's ``teacher``:
    teacher tokens; ...), then weights it by the method's ``loss_weights()``."""

    lm_sum: torch.Tensor
    n_tokens: int
    terms: dict[str, torch.Tensor] = {}


def batch_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> BatchLoss:
    """Training forward for any method: summed next-token loss (and halting loss) of one collated batch."""
    return loss_of_pass(model, forward_hidden(model, batch["input_ids"], batch["attention_mask"],
                                              batch.get("thought_mask")).hidden, batch)


def loss_of_pass(model: PreTrainedModel, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> BatchLoss:
    """The token loss (and the halting and thought-target losses) of a batch whose pass is done: ``hidden``
    its final hidden states."""
    lm_sum, n_tokens = lm_loss_sum(model, hidden, batch["labels"])
    terms = {}
    if "halt_targets" in batch:
        halt_sum, n_decisions = halting_loss_sum(model, hidden, batch["halt_targets"])
        if n_decisions:
            terms["halt"] = halt_sum
    if "thought_targets" in batch:
        terms["thought_target"] = thought_target_loss_sum(model, hidden, batch["thought_mask"],
                                                          batch["thought_targets"])
    return BatchLoss(lm_sum, n_tokens, terms)


def thought_target_logits(model: PreTrainedModel, hidden: torch.Tensor, thought_mask: torch.Tensor,
                          thoughts: int) -> torch.Tensor:
    """(batch, thoughts, vocab) LM-head logits at the positions that feed thoughts 0 .. thoughts-1 (the one
    before the block, then each thought but the last), in float32 at least."""
    start, _ = thought_columns(thought_mask)
    logits = model.get_output_embeddings()(hidden[:, start - 1:start - 1 + thoughts])
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def thought_target_loss_sum(model: PreTrainedModel, hidden: torch.Tensor, thought_mask: torch.Tensor,
                            targets: torch.Tensor) -> torch.Tensor:
    """Summed over the targeted thoughts: the cross entropy of the LM head's distribution at the position that
    feeds the thought against the uniform distribution over its target set, -mean over the set of log p(v).

    Uniform rather than Zhu et al.'s -log sum p(v): a mixture fed back (token_mixture) then carries every
    member of the frontier, not whichever one the head happens to favour. ``targets``: (batch, thoughts,
    members) ids, -1 padding."""
    log_probs = torch.log_softmax(thought_target_logits(model, hidden, thought_mask, targets.shape[1]), dim=-1)
    member = targets >= 0
    picked = log_probs.gather(-1, targets.clamp_min(0)) * member
    counts = member.sum(-1)
    per_thought = -picked.sum(-1) / counts.clamp_min(1)
    return per_thought[counts > 0].sum()


def target_mixtures(model: PreTrainedModel, targets: torch.Tensor) -> torch.Tensor:
    """(batch, thoughts, d): the mean input embedding of each thought's target set (zeros where none)."""
    table = model.get_input_embeddings().weight
    member = (targets >= 0).to(table.dtype)
    rows = table[targets.clamp_min(0)] * member[..., None]
    return rows.sum(-2) / member.sum(-1, keepdim=True).clamp_min(1)


def teacher_forced_forward(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           thought_mask: torch.Tensor, targets: torch.Tensor, return_layers: bool = False) -> Hidden:
    """``method.thought_feedback=target_mixture`` in training: thought j's input is the mean embedding of its
    target set (:func:`target_mixtures`) instead of what the previous position computed, so no thought waits
    for another and the whole sequence runs in one pass, as a written chain of thought trains."""
    embeds = model.get_input_embeddings()(input_ids)
    start, _ = thought_columns(thought_mask)
    thoughts = targets.shape[1]
    fed = target_mixtures(model, targets).to(embeds.dtype)
    block = thought_mask[:, start:start + thoughts, None]
    embeds = torch.cat([embeds[:, :start], torch.where(block, fed, embeds[:, start:start + thoughts]),
                        embeds[:, start + thoughts:]], dim=1)
    out = model.base_model(inputs_embeds=embeds, attention_mask=attention_mask,
                           position_ids=position_ids(attention_mask), use_cache=False,
                           output_hidden_states=return_layers)
    return Hidden(out.last_hidden_state, None, tuple(out.hidden_states) if return_layers else None,
                  fed, None)
