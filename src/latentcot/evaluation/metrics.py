"""Exact-match accuracy (the answer rule: :mod:`latentcot.evaluation.answers`) and the per-problem costs the
papers report (generated tokens, passes, time)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..data.encodings import Encoding
from ..data.records import Record
from .answers import extract_answer, is_correct
from ..methods import Method, continuous_thoughts


@dataclass
class EvalResult:
    """Accuracy and mean costs over a set of problems, plus one row per problem."""

    accuracy: float
    mean_generated_tokens: float
    mean_forward_passes: float
    seconds_per_problem: float
    n_problems: int
    n_thoughts: int | str  # the fixed count, or "auto" (the halting head decided each problem's)
    mean_thoughts: float = 0.0
    # problems grouped by their number of gold steps (as a string key, as JSON keeps it): count, accuracy
    # and mean thoughts of each group
    by_steps: dict[str, dict[str, float]] = field(default_factory=dict)
    # problems whose output held a piece with no counterpart in the file's words (an encoded run's node id
    # the graph does not have, a line that is no step); each row lists them under "unmapped"
    unmapped_outputs: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    method_stats: dict[str, Any] = field(default_factory=dict)  # Method.output_summary of the texts
    # with --samples: the perturbation and, per number of samples k, majority-vote accuracy, pass@k,
    # agreement and forward passes (:func:`latentcot.evaluation.voting.vote_curve`)
    sampling: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The numbers without the rows (for logs and metric files)."""
        out = asdict(self)
        out.pop("rows")
        out.update(out.pop("method_stats"))
        if not out["sampling"]:
            out.pop("sampling")
        return out

    def write_jsonl(self, path: str | Path) -> None:
        """One JSON object per problem, in input order; written to a temporary file, then renamed."""
        from ..data.io import atomic_write

        atomic_write(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self.rows))


def by_step_count(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Rows grouped by ``n_steps`` (keys are the counts as strings): how many, their accuracy and their
    mean thoughts."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["n_steps"], []).append(row)
    return {str(steps): {"n_problems": len(group),
                    "accuracy": sum(r["correct"] for r in group) / len(group),
                    "mean_thoughts": sum(r["n_thoughts"] for r in group) / len(group)}
            for steps, group in sorted(groups.items())}


def evaluate(model, tokenizer, method: Method, records: Sequence[Record], batch_size: int = 32,
             n_thoughts: int | str | None = None, max_new_tokens: int | None = None, progress: bool = False,
             encoding: Encoding | None = None, source: str = "<memory>", halt_threshold: float | None = None,
             sampling=None) -> EvalResult:
    """Generate greedily for every record and score it (see :mod:`latentcot.inference.generate` for costs).

    ``records`` are in the file's words; ``encoding`` (the run's ``data.encoding``) converts them for the
    model and converts what it writes back, so rows and accuracy are in the file's words. Rows of an
    encoded run also keep the model's own text as ``generated_encoded`` and list under ``unmapped`` the
    pieces of it that have no counterpart in the file's words (marked ``<unmapped: ...>`` in ``generated``).
    ``halt_threshold``: adaptive thinking's stop probability for this call (default: the run's
    ``method.halt_threshold``).

    ``sampling`` (:class:`~latentcot.inference.sampling.LatentSampling`): answer each problem with that many
    perturbed latent trajectories; a row's answer is their majority vote, its costs the sum over its samples
    (the question pass once), and it lists every sample's answer; ``sampling`` in the result holds the vote
    curve.
    """
    from ..inference.generate import AUTO, generate, wants_auto

    if not records:
        raise ValueError("evaluate needs at least one problem")
    encoding = encoding or Encoding()
    encoded = encoding.encode_all(records, source)
    sampled = None
    if sampling is not None:
        from ..inference.sampling import generate_samples
        from .voting import agreement, vote_curve

        sampled = generate_samples(model, tokenizer, method, encoded, sampling, batch_size=batch_size,
                                   n_thoughts=n_thoughts, max_new_tokens=max_new_tokens, progress=progress)
        # the vote counts answers in the file's words (two spellings of one node are one answer)
        read_samples = [[encoding.read_output(g.text, enc).text for g in samples]
                        for samples, enc in zip(sampled, encoded)]
        generations = [_voted(samples, texts) for samples, texts in zip(sampled, read_samples)]
    else:
        generations = generate(model, tokenizer, method, encoded, batch_size=batch_size, n_thoughts=n_thoughts,
                               max_new_tokens=max_new_tokens, progress=progress, halt_threshold=halt_threshold)
    rows = []
    for k, (record, enc, gen) in enumerate(zip(records, encoded, generations)):
        read = encoding.read_output(gen.text, enc)
        text = read.text
        if sampled is not None:
            sample_texts = read_samples[k]
        rows.append({
            "question": record.question,
            "answer": record.answer,
            "generated": text,
            **({"generated_encoded": gen.text, "unmapped": list(read.unmapped)} if enc is not record else {}),
            "predicted": extract_answer(text),
            "correct": is_correct(text, record),
            "n_thoughts": gen.n_thoughts,
            "n_steps": len(record.steps),
            "generated_tokens": gen.generated_tokens,
            "forward_passes": gen.forward_passes,
            "seconds": gen.seconds,
            **({"samples": sample_texts, "agreement": agreement(sample_texts)} if sampled is not None else {}),
        })
    count = len(rows)
    curve = {}
    if sampled is not None:
        curve = {"samples": sampling.samples, "latent_noise": sampling.noise, "latent_dropout": sampling.dropout,
                 "seed": sampling.seed,
                 "by_samples": vote_curve([row["samples"] for row in rows],
                                          [[g.forward_passes for g in s] for s in sampled], records)}
    return EvalResult(
        accuracy=sum(row["correct"] for row in rows) / count,
        mean_generated_tokens=sum(g.generated_tokens for g in generations) / count,
        mean_forward_passes=sum(g.forward_passes for g in generations) / count,
        seconds_per_problem=sum(g.seconds for g in generations) / count,
        n_problems=count,
        n_thoughts=AUTO if wants_auto(method, n_thoughts) else generations[0].n_thoughts,
        mean_thoughts=sum(g.n_thoughts for g in generations) / count,
        by_steps=by_step_count(rows),
        unmapped_outputs=sum(bool(row.get("unmapped")) for row in rows),
        rows=rows,
        method_stats=method.output_summary([g.text for g in generations]),
        sampling=curve,
    )


def _voted(samples, texts):
    """One problem's samples as one answer: the sample the majority vote over ``texts`` (the samples read in the
    file's words) picks, with the costs of all samples together."""
    from ..inference.generate import Generation
    from .voting import majority

    chosen = samples[texts.index(majority(texts))]
    return Generation(text=chosen.text, token_ids=chosen.token_ids, n_thoughts=chosen.n_thoughts,
                      generated_tokens=sum(g.generated_tokens for g in samples),
                      forward_passes=sum(g.forward_passes for g in samples),
                      seconds=sum(g.seconds for g in samples))


def stage_target_accuracy(model, tokenizer, method: Method, records: Sequence[Record], stage: int,
                          encoding: Encoding, batch_size: int = 32, source: str = "<memory>") -> dict:
    """How often a ``method.stage_target=frontier`` model at ``stage`` k writes a valid stage target: after k
    thoughts, a node k+1 edges from the root on a path to the target (Zhu, Hao et al. 2025's supervision).

    The answer accuracy of such a stage is near 0 by design (it is trained to name a frontier node, not the
    answer), so this is the curve that shows it learning. Only problems with more than k steps have a
    frontier target at stage k; the others are left out and ``stage_problems`` counts those kept."""
    from ..data.encodings import graph_stage_targets
    from ..inference.generate import generate

    encoded = [e for e in encoding.encode_all(records, source) if len(e.steps) > stage]
    if not encoded:
        return {"stage_accuracy": None, "stage_problems": 0}
    generations = generate(model, tokenizer, method, encoded, batch_size=batch_size,
                           n_thoughts=method.thoughts_for(stage, stage + 1))
    right = sum(extract_answer(gen.text) in graph_stage_targets(enc)[stage] for enc, gen in zip(encoded, generations))
    return {"stage_accuracy": right / len(encoded), "stage_problems": len(encoded)}


def method_metrics(model, tokenizer, method: Method, records: Sequence[Record], epoch: int, encoding: Encoding,
                   batch_size: int = 32) -> dict:
    """What validation after ``epoch`` measures beside accuracy, as the method's interface asks: frontier
    stage accuracy (:meth:`~latentcot.methods.Method.frontier_stage`) and per-thought target exactness
    (:meth:`~latentcot.methods.Method.thought_target_kind`)."""
    summary: dict = {}
    stage = method.frontier_stage(epoch)
    if stage is not None:
        summary.update(stage_target_accuracy(model, tokenizer, method, records, stage, encoding, batch_size))
    kind = method.thought_target_kind()
    if kind != "none":
        summary.update(thought_target_exactness(model, tokenizer, method, records, encoding, kind, batch_size,
                                                n_thoughts=method.eval_thoughts(epoch)))
    return summary


def thought_target_exactness(model, tokenizer, method: Method, records: Sequence[Record], encoding: Encoding,
                             kind: str, batch_size: int = 64, n_thoughts: int | None = None,
                             source: str = "<memory>") -> dict:
    """Per thought, how often the LM head at the position that feeds it ranks exactly its target set first:
    the top-|R| tokens are R (``method.thought_targets``; for ``reachable`` R_k, the nodes within k hops).

    The thoughts run free, as inference runs them (each fed what the model computed, never its target), so
    this is the curve of the search itself; ``thought{j}_set_exact`` for thought j = 1, 2, ..."""
    import torch

    from ..data.targets import thought_target_texts
    from ..inference.generate import EvalMode
    from ..models.continuous import thought_target_logits
    from ..tokenization import tokenize_records

    method = continuous_thoughts(method, "thought-target exactness")
    hops = method.thought_target_hops()
    encoded = [Record(e.question, e.steps, e.answer, dict(e.extra, thought_targets=thought_target_texts(e, kind, hops)))
               for e in encoding.encode_all(records, source)]
    tokens = tokenize_records(encoded, tokenizer)
    n = method.default_thoughts() if n_thoughts is None else n_thoughts
    per_step = method.thoughts_per_step()
    right, counted = [0] * n, [0] * n
    device = next(model.parameters()).device
    with EvalMode(model), torch.no_grad():
        for lo in range(0, len(tokens), batch_size):
            part = tokens[lo:lo + batch_size]
            batch = method.collate([method.prompt(t, n) for t in part], tokenizer.pad_token_id, align="thoughts")
            batch = {k: v.to(device) for k, v in batch.items()}
            if n == 0:
                continue
            passed = method.forward_hidden(model, batch["input_ids"], batch["attention_mask"], batch["thought_mask"])
            logits = thought_target_logits(model, passed.hidden, batch["thought_mask"], n)
            for row, record in enumerate(part):
                for j in range(n):
                    hop = j // per_step
                    if hop >= len(record.thought_targets) or not record.thought_targets[hop]:
                        continue
                    want = set(record.thought_targets[hop])
                    top = set(logits[row, j].topk(len(want)).indices.tolist())
                    right[j] += top == want
                    counted[j] += 1
    return {f"thought{j + 1}_set_exact": round(right[j] / counted[j], 4) for j in range(n) if counted[j]}
