"""The continuous-thought forward pass (Coconut), shared by training and inference.

A thought position takes as its input embedding the final hidden state (after the last layer norm) of
the position before it. Because every thought depends on the one before, thoughts are computed one at
a time; the KV cache is what keeps that cheap (see :func:`forward_hidden`).
"""

from __future__ import annotations

import inspect

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel

from ..methods.base import IGNORE_INDEX, Example
from .halting import IGNORE_TARGET, decision_count, decision_targets, halting_loss_sum

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


def thought_columns(thought_mask: torch.Tensor) -> tuple[int, int]:
    """The contiguous block of columns that hold thoughts in at least one row."""
    columns = thought_mask.any(0).nonzero().flatten()
    start, end = int(columns[0]), int(columns[-1]) + 1
    if len(columns) != end - start:
        raise ValueError("continuous thoughts must form one contiguous block of columns; "
                         "collate the batch with align='thoughts'")
    if start == 0:
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


def forward_hidden(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    thought_mask: torch.Tensor | None = None,
    cache: DynamicCache | None = None,
) -> tuple[torch.Tensor, DynamicCache | None]:
    """Final hidden states for every position, thoughts filled in; returns the cache when one is used.

    Work: one pass over the columns before the first thought, one single-column step per thought (its
    input is the hidden state the previous step just produced; rows without a thought in that column
    use their token embedding), then one pass over the rest. The cache carries the keys and values of
    everything already seen, so this costs about one forward pass plus one small step per thought, not
    one full pass per thought, and gradients flow back through the cache into every earlier thought.
    """
    base = model.base_model
    embeds = model.get_input_embeddings()(input_ids)
    positions = position_ids(attention_mask)
    if thought_mask is None or not bool(thought_mask.any()):
        out = base(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions,
                   use_cache=cache is not None, **cache_argument(base, cache))
        return out.last_hidden_state, returned_cache(out) if cache is not None else None

    start, end = thought_columns(thought_mask)
    if cache is None:
        cache = DynamicCache(config=model.config)
    chunks: list[torch.Tensor] = []

    def run(lo: int, hi: int, inputs: torch.Tensor) -> torch.Tensor:
        out = base(inputs_embeds=inputs, attention_mask=attention_mask[:, :hi], position_ids=positions[:, lo:hi],
                   use_cache=True, **cache_argument(base, cache))
        chunks.append(out.last_hidden_state)
        return out.last_hidden_state

    hidden = run(0, start, embeds[:, :start])
    for col in range(start, end):
        is_thought = thought_mask[:, col, None, None]
        hidden = run(col, col + 1, torch.where(is_thought, hidden[:, -1:].to(embeds.dtype), embeds[:, col:col + 1]))
    if end < input_ids.shape[1]:
        run(end, input_ids.shape[1], embeds[:, end:])
    return torch.cat(chunks, dim=1), cache


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
    """Summed losses of one collated batch and what each sums over; the trainer normalises them by the
    counts of the whole (accumulated, all-process) batch."""

    lm_sum: torch.Tensor
    n_tokens: int
    halt_sum: torch.Tensor | None = None  # the halting head's, when the model has one and the batch decides
    n_decisions: int = 0


def batch_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> BatchLoss:
    """Training forward for any method: summed next-token loss (and halting loss) of one collated batch."""
    hidden, _ = forward_hidden(model, batch["input_ids"], batch["attention_mask"], batch.get("thought_mask"))
    lm_sum, n_tokens = lm_loss_sum(model, hidden, batch["labels"])
    if "halt_targets" not in batch:
        return BatchLoss(lm_sum, n_tokens)
    halt_sum, n_decisions = halting_loss_sum(model, hidden, batch["halt_targets"])
    return BatchLoss(lm_sum, n_tokens, halt_sum if n_decisions else None, n_decisions)
