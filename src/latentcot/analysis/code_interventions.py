"""Do Token Assorted's codes matter? Interventions on the discrete latent codes a model writes.

Token Assorted has no continuous thoughts to edit: the model writes ``<bol> <latent_a> <latent_b> ... <eol>``
itself, then the rest of the reasoning as text, then ``### answer``. Its latents are those code tokens, so an
intervention at code position i forces what the untouched greedy run wrote up to code i, with code i replaced,
and lets the model continue greedily from there:

* ``random``: a uniformly random other code of the codebook (seeded by ``seed``, the problem and i);
* ``swap``: code i of the next problem in the file that wrote a code i (wrapping around);
* ``pause``: the ``<pause>`` token, which carries no code;
* ``truncate``: ``<eol>`` in its place: the block ends before code i and the model goes on from there.

A problem whose untouched answer has no code i is left as it was: it counts as not flipped, with its
untouched accuracy and no change of the gold answer's log-probability (``n_with_code`` says how many had one).
The report has :func:`~latentcot.analysis.interventions.run_interventions`' schema, so its table and plot
serve both.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import torch

from ..data.records import Record
from ..errors import UsageError
from ..evaluation.answers import accuracy, flip_rate
from ..examples import IGNORE_INDEX, Example
from ..inference.generate import EvalMode, _decode_text, _generate_batch, context_length, generate
from ..methods import Method, tokenize_records
from ..methods.assorted import Assorted
from ..tokenization import ANSWER_PREFIX, BEGIN_LATENT, END_LATENT, PAUSE

CODE_INTERVENTIONS = ("random", "swap", "pause", "truncate")
# rule(problem, position): the token fed instead of that problem's code at that position
Rule = Callable[[int, int], int]


def code_positions(assorted: Assorted, token_ids: Sequence[int]) -> list[int]:
    """Where the codes of the first latent block sit in a written answer (indices into ``token_ids``); a block the
    model never closed runs to the end of what it wrote."""
    begin, end = assorted.token_ids[BEGIN_LATENT], assorted.token_ids[END_LATENT]
    if begin not in token_ids:
        return []
    found = []
    for j in range(list(token_ids).index(begin) + 1, len(token_ids)):
        if token_ids[j] == end:
            break
        if token_ids[j] in assorted.code_of:
            found.append(j)
    return found


def random_code(assorted: Assorted, original: int, seed: int, problem: int, position: int) -> int:
    """A code token drawn uniformly from the codebook without ``original``; the draw depends only on (seed,
    problem, position), so a report does not change with the batch size."""
    rng = random.Random(f"{seed}/{problem}/{position}")  # str seeds hash the same in every process
    draw = rng.randrange(len(assorted.latent_ids) - 1)
    return assorted.latent_ids[draw + (draw >= assorted.code_of[original])]


def replacement_rule(kind: str, assorted: Assorted, tokenizer, written: Sequence[Sequence[int]],
                     positions: Sequence[Sequence[int]], seed: int = 0) -> Rule:
    """What intervention ``kind`` feeds instead of problem k's code i (``positions``: :func:`code_positions`
    of each untouched answer in ``written``)."""
    if kind == "random":
        return lambda k, i: random_code(assorted, written[k][positions[k][i]], seed, k, i)
    if kind == "swap":
        def swap(k: int, i: int) -> int:
            # the next problem with a code i; a problem alone in having one keeps its own
            later = ((k + step) % len(written) for step in range(1, len(written) + 1))
            other = next(o for o in later if len(positions[o]) > i)
            return written[other][positions[other][i]]
        return swap
    if kind == "pause":
        pause = tokenizer.get_vocab().get(PAUSE)
        if pause is None:
            raise UsageError(f"the 'pause' intervention needs the {PAUSE} token, which this tokenizer does not have")
        return lambda k, i: pause
    if kind == "truncate":
        return lambda k, i: assorted.token_ids[END_LATENT]
    raise UsageError(f"unknown code intervention {kind!r}; choose from {', '.join(CODE_INTERVENTIONS)}")


def forced_prefixes(written: Sequence[Sequence[int]], positions: Sequence[Sequence[int]], position: int,
                    rule: Rule) -> list[list[int] | None]:
    """Per problem, what is forced after the prompt: the untouched answer up to code ``position``, that code
    replaced by ``rule``; None for a problem that wrote no code there (it stays untouched)."""
    out: list[list[int] | None] = []
    for k, (ids, where) in enumerate(zip(written, positions)):
        out.append(None if len(where) <= position else [*ids[:where[position]], rule(k, position)])
    return out


def all_codes_replaced(assorted: Assorted, written: Sequence[Sequence[int]], positions: Sequence[Sequence[int]],
                       seed: int = 0) -> list[list[int] | None]:
    """Per problem, the untouched answer up to its last code with every code replaced by the draw ``random``
    makes at that position (the same codes, all at once); None for a problem that wrote none."""
    out: list[list[int] | None] = []
    for k, (ids, where) in enumerate(zip(written, positions)):
        forced = list(ids[:where[-1] + 1]) if where else None
        for i, j in enumerate(where):
            forced[j] = random_code(assorted, ids[j], seed, k, i)
        out.append(forced)
    return out


def answer_limit(model, method: Method, prompts: Sequence[Sequence[int]]) -> int:
    """The most tokens :func:`~latentcot.inference.generate.generate` lets a problem write (its default
    ``max_new_tokens``, cut to fit the context as it cuts it): a forced answer is continued up to the same
    total, so forcing the untouched tokens writes the untouched answer."""
    limit = method.cfg.max_new_tokens
    context = context_length(model)
    if context is not None:
        limit = min(limit, context - max(len(p) for p in prompts))
    return limit


def _continue_greedily(model, method: Method, prefixes: Sequence[Sequence[int]], steps: int, tokenizer
                       ) -> list[list[int]]:
    """The one call into generation's private batch decoder (it may become public): greedy tokens after each
    full prefix, as :func:`~latentcot.inference.generate.generate` writes them after a prompt."""
    examples = [Example(list(p), [IGNORE_INDEX] * len(p)) for p in prefixes]
    device = next(model.parameters()).device
    return _generate_batch(model, method, examples, steps, tokenizer.pad_token_id, tokenizer.eos_token_id,
                           device)[0]


def continue_answers(model, tokenizer, method: Method, prompts: Sequence[Sequence[int]],
                     forced: Sequence[Sequence[int]], limit: int, batch_size: int = 32) -> list[list[int]]:
    """Each whole written answer: the forced tokens, then the greedy continuation, ``limit`` tokens in all at
    most. Batches run in order of what is left to write, so a row never rides along past the context."""
    left = [limit - len(f) for f in forced]
    out = [list(f) for f in forced]
    todo = sorted((k for k in range(len(forced)) if left[k] > 0), key=lambda k: -left[k])
    context = context_length(model)
    with EvalMode(model):
        for lo in range(0, len(todo), batch_size):
            chunk = todo[lo:lo + batch_size]
            steps = left[chunk[0]]
            longest = max(len(prompts[k]) + len(forced[k]) for k in chunk)
            # rows that finish early keep advancing positions: past the context, run each row alone
            groups = [chunk] if context is None or longest + steps <= context else [[k] for k in chunk]
            for group in groups:
                ids = _continue_greedily(model, method, [[*prompts[k], *forced[k]] for k in group], left[group[0]],
                                         tokenizer)
                for k, row in zip(group, ids):
                    out[k] += row[:left[k]]
    return out


def answer_marker(answer: Sequence[int], tokenizer) -> list[int]:
    """The leading tokens of a tokenized gold answer that spell the answer prefix (``### ``): where the model's
    own answer starts in what it wrote."""
    j = 0
    while j < len(answer) and ANSWER_PREFIX.startswith(
            tokenizer.decode(list(answer[:j + 1]), skip_special_tokens=False, clean_up_tokenization_spaces=False)):
        j += 1
    return list(answer[:j])


def reasoning_before_answer(written: Sequence[int], marker: Sequence[int], eos_id: int) -> list[int]:
    """What the model wrote before its answer: cut at the first answer marker; without one, all of it (less a
    final end-of-sequence token), so the gold answer is scored after everything written."""
    n = len(marker)
    for j in range(len(written) - n + 1 if n else 0):
        if list(written[j:j + n]) == list(marker):
            return list(written[:j])
    return list(written[:-1] if written and written[-1] == eos_id else written)


def answer_log_probs(model, method: Method, pad_id: int, contexts: Sequence[Sequence[int]],
                     answers: Sequence[Sequence[int]], batch_size: int = 32) -> list[float]:
    """log p(answer | context) per row, teacher-forced in one pass per batch; the LM head runs only where an
    answer token is predicted (a large vocabulary times every position would not fit)."""
    out: list[float] = []
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    with EvalMode(model), torch.no_grad():
        for lo in range(0, len(contexts), batch_size):
            examples = [Example([*c, *a], [IGNORE_INDEX] * len(c) + list(a))
                        for c, a in zip(contexts[lo:lo + batch_size], answers[lo:lo + batch_size])]
            batch = method.collate(examples, pad_id, align="right")
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            hidden = method.forward_hidden(model, ids, mask).hidden[:, :-1]
            targets = batch["labels"][:, 1:].to(device)
            scored = targets != IGNORE_INDEX
            picked = torch.log_softmax(head(hidden[scored]).double(), -1).gather(-1, targets[scored][:, None])[:, 0]
            rows = scored.nonzero()[:, 0]
            sums = torch.zeros(len(examples), dtype=torch.float64, device=device).index_add_(0, rows, picked)
            out += sums.tolist()
    return out


def _check(method: Method, tokenizer, n_codes: int | None, kinds: Sequence[str]) -> None:
    if not isinstance(method, Assorted):
        raise UsageError(f"code interventions need a Token Assorted run; method {method.name!r} writes no latent "
                         "codes (continuous thoughts: latentcot analyze interventions)")
    if n_codes is not None and n_codes < 1:
        raise UsageError(f"--n-thoughts (the code positions probed) must be >= 1, got {n_codes}")
    unknown = [k for k in kinds if k not in CODE_INTERVENTIONS]
    if unknown:
        raise UsageError(f"unknown code interventions {unknown}; choose from {', '.join(CODE_INTERVENTIONS)}")
    if "pause" in kinds and PAUSE not in tokenizer.get_vocab():
        raise UsageError(f"the 'pause' intervention needs the {PAUSE} token, which this tokenizer does not have; "
                         "leave 'pause' out of the kinds")
    assorted: Assorted = method
    codebook = len(assorted.latent_ids)
    if codebook < 2:  # all_replaced draws random codes whatever the kinds
        raise UsageError(f"random codes need a codebook of at least 2 codes; this one has {codebook}")


def run_code_interventions(model, tokenizer, method: Method, records: Sequence[Record], n_codes: int | None = None,
                           kinds: Sequence[str] = CODE_INTERVENTIONS, batch_size: int = 32, seed: int = 0) -> dict:
    """Accuracy, flip rate and gold log-probability change per (code position, intervention); ``n_thoughts``
    is the number of code positions probed (default: the most codes any untouched answer wrote).

    Besides :func:`~latentcot.analysis.interventions.run_interventions`' keys: ``latents: "codes"``,
    ``n_with_code`` (per position, the problems that wrote a code there; the others count as untouched),
    ``flip_rate_with_code`` (per position and kind, the flip rate among the problems that wrote that code),
    ``swap_same_code`` (per position, the swaps that handed over the problem's own code: no change) and
    ``all_replaced``: every code of every problem replaced by its ``random`` draw at once."""
    _check(method, tokenizer, n_codes, kinds)
    if not records:
        raise UsageError("code interventions need at least one problem")
    tokens = tokenize_records(records, tokenizer)
    prompts = [method.prompt(t, 0).input_ids for t in tokens]
    answers = [list(t.answer) for t in tokens]
    markers = [answer_marker(a, tokenizer) for a in answers]
    eos_id = tokenizer.eos_token_id
    limit = answer_limit(model, method, prompts)
    written = [g.token_ids for g in generate(model, tokenizer, method, records, batch_size=batch_size)]
    positions = [code_positions(method, w) for w in written]
    if not any(positions):
        raise UsageError("no answer wrote a latent code (<bol> codes <eol>): there is nothing to intervene on")
    n = max(map(len, positions)) if n_codes is None else n_codes
    P = len(records)

    def text(ids: Sequence[int]) -> str:
        return _decode_text(tokenizer, list(ids), eos_id)

    def gold(rows: Sequence[int], answered: Sequence[Sequence[int]]) -> list[float]:
        contexts = [[*prompts[k], *reasoning_before_answer(w, markers[k], eos_id)] for k, w in zip(rows, answered)]
        return answer_log_probs(model, method, tokenizer.pad_token_id, contexts, [answers[k] for k in rows],
                                batch_size)

    base = [text(w) for w in written]
    base_gold = gold(range(P), written)

    def rerun(forced: Sequence[list[int] | None], with_gold: bool = True) -> dict:
        rows = [k for k, f in enumerate(forced) if f is not None]
        answered = continue_answers(model, tokenizer, method, [prompts[k] for k in rows], [forced[k] for k in rows],
                                    limit, batch_size)
        texts, golds = list(base), list(base_gold)
        for k, ids in zip(rows, answered):
            texts[k] = text(ids)
        if with_gold and rows:
            for k, g in zip(rows, gold(rows, answered)):
                golds[k] = g
        result = {"accuracy": accuracy(texts, records), "flip_rate": flip_rate(texts, base)}
        if with_gold:
            result["gold_logprob_change"] = sum(g - b for g, b in zip(golds, base_gold)) / P
        return result

    table: dict[str, dict[str, dict]] = {}
    with_code: dict[str, int] = {}
    swap_same: dict[str, int] = {}
    for i in range(n):
        with_code[str(i)] = sum(len(p) > i for p in positions)
        if "swap" in kinds:  # a swap that hands over the problem's own code changes nothing: say how often
            swapped = replacement_rule("swap", method, tokenizer, written, positions, seed)
            swap_same[str(i)] = sum(len(p) > i and swapped(k, i) == written[k][p[i]] for k, p in enumerate(positions))
        table[str(i)] = {kind: rerun(forced_prefixes(written, positions, i,
                                                     replacement_rule(kind, method, tokenizer, written, positions,
                                                                      seed)))
                         for kind in kinds}
    # the flip rate among the problems that wrote code i: later codes are written by fewer problems, so the
    # rate over all problems falls with i even where every code written is read
    among = {i: {kind: cell["flip_rate"] * P / with_code[i] for kind, cell in row.items()} if with_code[i] else {}
             for i, row in table.items()}
    everything = all_codes_replaced(method, written, positions, seed)
    return {"n_thoughts": n, "n_problems": P, "accuracy": accuracy(base, records), "latents": "codes",
            "by_position": table, "n_with_code": with_code, "flip_rate_with_code": among, **({"swap_same_code": swap_same} if swap_same else {}),
            "all_replaced": {"kind": "random", **rerun(everything, with_gold=False)}}
