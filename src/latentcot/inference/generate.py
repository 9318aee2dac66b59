"""Greedy generation for every method: batched, with the KV cache, continuous thoughts included.

A batch runs like this:

1. the prompts (``method.prompt``: the question, and for Coconut ``<bot>``, n thought placeholders and
   ``<eot>``) are left-padded so they all end in the same column;
2. :func:`~latentcot.models.continuous.forward_hidden` runs them into a fresh ``DynamicCache``: one pass
   over the columns before the first thought, one single-column step per continuous thought (fed the
   previous hidden state), one pass over ``<eot>``. Every row of a call gets the same number of thoughts,
   so with end-aligned prompts the thoughts of all rows share the same columns;
3. greedy decoding adds one column per step through ``model.base_model`` with the cache, until every
   row has written the end-of-sequence token or ``max_new_tokens`` tokens.

Counting, per problem (``Generation``):

* ``token_ids`` are the tokens the model wrote, the end-of-sequence token included when it wrote one;
  ``text`` is their decoding without that final EOS.
* ``generated_tokens = n_thoughts + len(token_ids)``: continuous thoughts count as tokens (as in the
  Coconut paper's tables), and so does the EOS, since writing it takes a decoding step like any other
  token. The ``<bot>``/``<eot>`` markers are part of the prompt, not generated, so they do not count.
* ``forward_passes`` counts model calls the problem needs, as if it ran alone: the prompt pass, plus
  for continuous thoughts one step per thought and one pass over what follows the thoughts (``<eot>``),
  plus one decoding step per written token after the first (the first comes from the prompt's logits; the
  last token needs no pass after it). So cached: ``1 + len(token_ids) - 1`` without thoughts and
  ``1 + n + 1 + len(token_ids) - 1`` with n continuous thoughts. A batch keeps stepping while any row is
  unfinished; steps a finished row rides along with are not counted for it.
* ``seconds`` is the batch's wall time divided by its size (tokenization excluded).

:func:`generate_naive` is the baseline a straightforward implementation gives (the official Coconut
code decodes this way): one problem at a time, no KV cache, every thought and every token re-runs the
whole sequence so far. It writes the same tokens; it is here to measure what batching and the cache buy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from ..data.records import Record
from ..methods import ContinuousThoughts, Example, Method, continuous_thoughts, tokenize_records
from ..models.continuous import cache_argument, collate, position_ids, returned_cache
from ..models.projection import feedback
from ..models.halting import require_halting_head, stop_probability
from ..progress import progress_bar
from ..errors import UsageError


@dataclass
class Generation:
    """What the model wrote for one problem, and what it cost (counting rules in the module docstring)."""

    text: str
    token_ids: list[int]
    n_thoughts: int
    generated_tokens: int
    forward_passes: int
    seconds: float


def _model_device(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


def _sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without this, wall times measure the launch queue, not the work.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


AUTO = "auto"


def wants_auto(method: Method, n_thoughts: int | str | None) -> bool:
    """Whether this call thinks adaptively: ``n_thoughts="auto"``, or no count given and the run's
    ``method.inference_thoughts`` is ``auto``."""
    if n_thoughts is None:
        return isinstance(method, ContinuousThoughts) and method.cfg.inference_thoughts == AUTO
    if isinstance(n_thoughts, str):
        if n_thoughts != AUTO:
            raise UsageError(f"n_thoughts must be a count or {AUTO!r}, got {n_thoughts!r}")
        continuous_thoughts(method, f"n_thoughts {AUTO!r}")
        return True
    return False


def _halt_threshold(method: Method, halt_threshold: float | None) -> float:
    """Adaptive thinking's stop threshold: the argument, else the run's ``method.halt_threshold``."""
    if halt_threshold is None:
        return method.cfg.halt_threshold
    if not 0.0 <= halt_threshold <= 1.0:
        raise UsageError(f"halt_threshold must be a probability in [0, 1], got {halt_threshold}")
    return halt_threshold


def _resolve_limits(method: Method, n_thoughts: int | str | None, max_new_tokens: int | None) -> tuple[int, int]:
    """The thought count (the cap when thinking adaptively) and the new-token limit."""
    if wants_auto(method, n_thoughts):
        n = continuous_thoughts(method, f"n_thoughts {AUTO!r}").thought_cap()
    else:
        n = method.default_thoughts() if n_thoughts is None else n_thoughts
    limit = method.cfg.max_new_tokens if max_new_tokens is None else max_new_tokens
    if n < 0:
        raise UsageError(f"n_thoughts must be >= 0, got {n}")
    if limit < 1:
        raise UsageError(f"max_new_tokens must be >= 1, got {limit}")
    return n, limit


def context_length(model: PreTrainedModel) -> int | None:
    """The most positions the model was built for (GPT-2's n_positions, Llama's max_position_embeddings)."""
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def check_prompts_fit(model: PreTrainedModel, examples: Sequence[Example]) -> None:
    """A prompt (thoughts included) must leave the model at least one position to write into."""
    _fit_to_context(model, examples, max(e.n_thoughts for e in examples), 1, limit_given=False)


def _fit_to_context(model: PreTrainedModel, examples: Sequence[Example], n_thoughts: int, limit: int,
                    limit_given: bool) -> int:
    """The number of new tokens to allow: a prompt that leaves no room, or an explicit ``max_new_tokens``
    past the context, is an error that says the limit; a default ``max_new_tokens`` is cut to fit."""
    context = context_length(model)
    if context is None or not examples:
        return limit
    longest = max(len(e.input_ids) for e in examples)
    thoughts = f" ({n_thoughts} thoughts included)" if any(e.n_thoughts for e in examples) else ""
    if longest >= context:
        raise UsageError(f"the longest prompt is {longest} tokens{thoughts}, but the model holds at most {context} "
                         f"positions (its n_positions): nothing could be generated; use fewer thoughts")
    if longest + limit > context:
        if limit_given:
            raise UsageError(f"max_new_tokens {limit} after the longest prompt of {longest} tokens{thoughts} needs "
                             f"{longest + limit} positions; the model holds at most {context} "
                             f"(at most {context - longest} new tokens fit)")
        return context - longest
    return limit


class EvalMode:
    """eval() for the duration (no dropout: greedy decoding must be deterministic), then back."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def _decode_text(tokenizer, ids: list[int], eos_id: int) -> str:
    if ids and ids[-1] == eos_id:
        ids = ids[:-1]
    # Other special tokens stay in the text: a model that writes <bot> mid-answer should be seen doing it.
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


@torch.no_grad()
def _generate_batch(model: PreTrainedModel, method: Method, examples: Sequence[Example], max_new_tokens: int,
                    pad_id: int, eos_id: int, device: torch.device, edit=None) -> tuple[list[list[int]], int]:
    """Greedy token ids per row (cut after the row's EOS) and the prompt's model-call count."""
    thought_id = method.thought_id if method.continuous else None
    batch = collate(examples, pad_id, thought_id, align="end")
    input_ids = batch["input_ids"].to(device)
    mask = batch["attention_mask"].to(device)
    thought_mask = batch["thought_mask"].to(device) if "thought_mask" in batch else None

    hidden, cache = method.forward_hidden(model, input_ids, mask, thought_mask, DynamicCache(config=model.config),
                                          edit=edit)[:2]
    prompt_calls = method.prompt_calls(thought_mask, input_ids.shape[1])
    return _decode_greedy(model, hidden[:, -1], cache, mask, max_new_tokens, pad_id, eos_id), prompt_calls


@torch.no_grad()
def _decode_greedy(model: PreTrainedModel, last_hidden: torch.Tensor, cache, mask: torch.Tensor, max_new_tokens: int,
                   pad_id: int, eos_id: int) -> list[list[int]]:
    """Greedy token ids per row (cut after the row's EOS), continuing a prompt the cache holds (``last_hidden``:
    its final position's hidden state, ``mask`` its attention mask)."""
    head = model.get_output_embeddings()
    logits = head(last_hidden)
    device = mask.device
    rows = mask.shape[0]
    # The next position of each row is its own count of real tokens: padding must not shift it.
    next_position = position_ids(mask)[:, -1] + 1
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    lengths = torch.zeros(rows, dtype=torch.long, device=device)
    written: list[torch.Tensor] = []
    for step in range(max_new_tokens):
        token = logits.argmax(-1)
        # A finished row keeps riding along (the batch is one tensor); pad what it is fed and ignore it.
        token = torch.where(done, torch.full_like(token, pad_id), token)
        written.append(token)
        lengths += (~done).long()
        done |= token == eos_id
        if step + 1 == max_new_tokens or bool(done.all()):
            break
        mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
        out = model.base_model(input_ids=token[:, None], attention_mask=mask, position_ids=next_position[:, None],
                               use_cache=True, **cache_argument(model.base_model, cache))
        cache = returned_cache(out)
        logits = head(out.last_hidden_state[:, -1])
        next_position = next_position + 1

    tokens = torch.stack(written, dim=1).tolist()
    return [row[:n] for row, n in zip(tokens, lengths.tolist())]


@torch.no_grad()
def _generate_batch_auto(model: PreTrainedModel, method: ContinuousThoughts, examples: Sequence[Example], cap: int,
                         max_new_tokens: int, pad_id: int, eos_id: int, device: torch.device, threshold: float
                         ) -> tuple[list[list[int]], list[int]]:
    """Adaptive thinking: greedy token ids and the thought count per row.

    The prompts (question and ``<bot>``) end in one column. After them every column is one cached
    single-position step in which each row takes its own next input: the previous hidden state while it
    thinks, ``<eot>`` once its halting head says stop (or at ``cap`` thoughts), then the tokens it writes.
    Every row thus advances one position per column, so each row sees exactly the sequence it would see
    alone; rows that are done ride along and are ignored. Each column is one call of the method's
    :meth:`~latentcot.methods.Method.forward_hidden` continuing the cache, the thinking rows' positions
    marked as thoughts, so the thoughts are fed as the fixed-count pass feeds them.
    """
    batch = collate(examples, pad_id, None, align="end")
    input_ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    hidden, cache = method.forward_hidden(model, input_ids, mask, None, DynamicCache(config=model.config))[:2]
    hidden = hidden[:, -1:]
    head = model.get_output_embeddings()
    rows = input_ids.shape[0]
    thoughts = torch.zeros(rows, dtype=torch.long, device=device)
    thinking = (stop_probability(model, hidden[:, 0]) <= threshold) & (thoughts < cap)
    ending = ~thinking  # feeds <eot> at the next column
    writing = torch.zeros(rows, dtype=torch.bool, device=device)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    eot = torch.full((rows,), method.end_of_thoughts_id, dtype=torch.long, device=device)
    token = torch.full((rows,), pad_id, dtype=torch.long, device=device)
    written: list[torch.Tensor] = []
    spoke: list[torch.Tensor] = []
    lengths = torch.zeros(rows, dtype=torch.long, device=device)
    while not bool(done.all()):
        fed = torch.where(ending, eot, torch.where(writing & ~done, token, torch.full_like(token, pad_id)))
        mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
        hidden, cache = method.forward_hidden(model, fed[:, None], mask, thinking[:, None], cache, previous=hidden)[:2]
        hidden = hidden[:, -1:]
        # Rows that wrote <eot> or a token in this column now choose their next token.
        speaking = ending | (writing & ~done)
        token = torch.where(speaking, head(hidden[:, 0]).argmax(-1), torch.full_like(token, pad_id))
        written.append(token)
        spoke.append(speaking)
        lengths += speaking.long()
        done |= speaking & ((token == eos_id) | (lengths >= max_new_tokens))
        writing |= ending
        # Rows that fed a thought in this column decide whether to think on.
        thoughts += thinking.long()
        ending = thinking & ((stop_probability(model, hidden[:, 0]) > threshold) | (thoughts >= cap))
        thinking &= ~ending
    tokens, spoken = torch.stack(written, dim=1).tolist(), torch.stack(spoke, dim=1).tolist()
    return [[t for t, s in zip(ids, said) if s] for ids, said in zip(tokens, spoken)], thoughts.tolist()


def generate(model: PreTrainedModel, tokenizer, method: Method, records: Sequence[Record], batch_size: int = 32,
             n_thoughts: int | str | None = None, max_new_tokens: int | None = None, progress: bool = False,
             halt_threshold: float | None = None, latent_edit=None) -> list[Generation]:
    """Greedy answers for ``records``, in their order, batched with the KV cache.

    ``latent_edit(problems, j, latent)`` changes what thought j is fed in a batch of ``problems`` (their indices
    in ``records``; ``latent`` (len(problems), 1, d)), inside the same cached pass (interventions on the latents).

    ``n_thoughts`` defaults to ``method.default_thoughts()`` (ignored by methods without thoughts), or is
    ``"auto"``: the halting head decides each problem's count, at most ``method.thought_cap()``.
    ``max_new_tokens`` defaults to ``method.cfg.max_new_tokens``, ``halt_threshold`` (adaptive thinking's stop
    probability) to ``method.cfg.halt_threshold``. Problems are sorted by prompt length so a
    batch holds similar lengths (less padding); results come back in input order.
    """
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    n, limit = _resolve_limits(method, n_thoughts, max_new_tokens)
    threshold = _halt_threshold(method, halt_threshold)
    if not records:
        return []
    if latent_edit is not None and wants_auto(method, n_thoughts):
        raise UsageError("a latent edit needs a fixed thought count, not adaptive thinking")
    device = _model_device(model)
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    auto = wants_auto(method, n_thoughts)
    thinker = continuous_thoughts(method, f"n_thoughts {AUTO!r}") if auto else None
    if auto:
        require_halting_head(model)
    tokenized = tokenize_records(records, tokenizer)
    # adaptive thinking is checked against its cap: the most room a problem may need
    examples = [method.prompt(r, n) for r in tokenized]
    limit = _fit_to_context(model, examples, n, limit, max_new_tokens is not None)
    if thinker is not None:
        examples = [thinker.open_prompt(r) for r in tokenized]
    # Longest first: the largest batch runs first, so running out of memory happens at once, not at the end.
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    results: list[Generation | None] = [None] * len(records)
    if progress:
        chunks = progress_bar(chunks, desc="generate", unit="batch")
    with EvalMode(model):
        for chunk in chunks:
            _sync(device)
            start = time.perf_counter()
            batch = [examples[i] for i in chunk]
            if thinker is not None:
                token_lists, counts = _generate_batch_auto(model, thinker, batch, n, limit, pad_id, eos_id, device,
                                                           threshold)
                # the prompt pass, one step per thought, the <eot> step, one per written token after the first
                calls = [2 + k for k in counts]
            else:
                edit = None if latent_edit is None else (
                    lambda j, latent, rows=list(chunk): latent_edit(rows, j, latent))
                token_lists, prompt_calls = _generate_batch(model, method, batch, limit, pad_id, eos_id, device, edit)
                counts = [e.n_thoughts if method.continuous else 0 for e in batch]
                calls = [prompt_calls] * len(batch)
            _sync(device)
            seconds = (time.perf_counter() - start) / len(chunk)
            for i, ids, thoughts, prompt_calls in zip(chunk, token_lists, counts, calls):
                results[i] = Generation(
                    text=_decode_text(tokenizer, ids, eos_id), token_ids=ids, n_thoughts=thoughts,
                    generated_tokens=thoughts + len(ids), forward_passes=prompt_calls + len(ids) - 1,
                    seconds=seconds)
    return results  # type: ignore[return-value]


@torch.no_grad()
def _naive_one(model: PreTrainedModel, method: Method, example: Example, max_new_tokens: int, eos_id: int,
               device: torch.device, auto_cap: int | None = None, threshold: float = 0.5
               ) -> tuple[list[int], int, int]:
    embed = model.get_input_embeddings()
    ids = torch.tensor([example.input_ids], device=device)
    embeds = embed(ids)
    calls = 0
    thoughts = example.n_thoughts if method.continuous else 0
    if method.continuous and example.n_thoughts > 0:
        columns = (ids[0] == method.thought_id).nonzero().flatten().tolist()
        embeds, calls = method.fill_thoughts_naive(model, embeds, columns)
    if auto_cap is not None:
        embeds, thoughts, more = _naive_think(model, continuous_thoughts(method, f"n_thoughts {AUTO!r}"), embeds,
                                              auto_cap, threshold)
        calls += more
    written: list[int] = []
    while len(written) < max_new_tokens:
        logits = model(inputs_embeds=embeds, use_cache=False).logits[0, -1]
        calls += 1
        token = int(logits.argmax())
        written.append(token)
        if token == eos_id:
            break
        embeds = torch.cat([embeds, embed(torch.tensor([[token]], device=device))], dim=1)
    return written, calls, thoughts


def _naive_think(model: PreTrainedModel, method: ContinuousThoughts, embeds: torch.Tensor, cap: int, threshold: float
                 ) -> tuple[torch.Tensor, int, int]:
    """Adaptive thinking without a cache, after a prompt that ends in ``<bot>``: re-run the prefix, ask the
    halting head, append the hidden state as the next thought until it says stop; then ``<eot>``."""
    thoughts = calls = 0
    while True:
        hidden = model(inputs_embeds=embeds, output_hidden_states=True, use_cache=False).hidden_states[-1][:, -1]
        calls += 1
        if thoughts >= cap or float(stop_probability(model, hidden)) > threshold:
            break
        embeds = torch.cat([embeds, feedback(model)(hidden[:, None]).to(embeds.dtype)], dim=1)
        thoughts += 1
    eot = model.get_input_embeddings()(torch.tensor([[method.end_of_thoughts_id]], device=embeds.device))
    return torch.cat([embeds, eot], dim=1), thoughts, calls


def generate_naive(model: PreTrainedModel, tokenizer, method: Method, records: Sequence[Record],
                   n_thoughts: int | str | None = None, max_new_tokens: int | None = None, progress: bool = False,
                   halt_threshold: float | None = None) -> list[Generation]:
    """The no-cache baseline: one problem at a time; each thought and each token re-runs the whole prefix.

    Same tokens as :func:`generate`; ``forward_passes`` counts its own (full-sequence) model calls:
    one per thought plus one per written token (adaptive thinking: one per halting decision instead of
    one per thought).
    """
    n, limit = _resolve_limits(method, n_thoughts, max_new_tokens)
    threshold = _halt_threshold(method, halt_threshold)
    device = _model_device(model)
    eos_id = tokenizer.eos_token_id
    auto = wants_auto(method, n_thoughts)
    if auto:
        require_halting_head(model)
    tokenized = tokenize_records(records, tokenizer)
    examples = [continuous_thoughts(method, f"n_thoughts {AUTO!r}").open_prompt(r) if auto else method.prompt(r, n)
                for r in tokenized]
    items = examples
    if progress:
        items = progress_bar(examples, desc="generate (naive)", unit="problem")
    results = []
    with EvalMode(model):
        for example in items:
            _sync(device)
            start = time.perf_counter()
            ids, calls, thoughts = _naive_one(model, method, example, limit, eos_id, device, n if auto else None,
                                               threshold)
            _sync(device)
            results.append(Generation(text=_decode_text(tokenizer, ids, eos_id), token_ids=ids, n_thoughts=thoughts,
                                      generated_tokens=thoughts + len(ids), forward_passes=calls,
                                      seconds=time.perf_counter() - start))
    return results
