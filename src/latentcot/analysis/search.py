"""Latent search probing (Coconut paper, Section 5.3): read each continuous thought through the LM head.

A continuous thought is the last hidden state fed back as the next input; projected through the output
embedding and a softmax it gives a distribution over the vocabulary. On ProsQA the probability it puts
on a concept's name (its first token, as it follows ``is a``) is that node's "value". The paper finds
the thoughts keep several frontier nodes (those exactly i edges from the question's person at thought
i) alive at once, a breadth-first-like search, with more value on nodes that lead to the target.

On any data set the top tokens of each thought show what it encodes (on GSM8k: intermediate numbers).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..data.records import Record
from ..errors import UsageError
from ..methods import Method, continuous_thoughts, tokenize_records
from ..inference.generate import check_prompts_fit
from ..models.continuous import collate
from .paths import Graph


def thought_probabilities(model, tokenizer, method: Method, records: Sequence[Record],
                          n_thoughts: int | Sequence[int], batch_size: int = 32) -> list[torch.Tensor]:
    """Per problem, a (thoughts, vocab) tensor: softmax of the LM head on each continuous thought.

    ``n_thoughts`` is one count for all problems or one per problem (adaptive thinking's counts); problems
    are probed in groups of equal count."""
    continuous_thoughts(method, "probing thoughts")
    if isinstance(n_thoughts, int):
        if n_thoughts < 1:
            raise UsageError(f"probing needs at least one thought, got n_thoughts={n_thoughts}")
        return _probe(model, tokenizer, method, records, n_thoughts, batch_size)
    if len(n_thoughts) != len(records):
        raise ValueError(f"{len(n_thoughts)} thought counts for {len(records)} problems")
    out: list[torch.Tensor | None] = [None] * len(records)
    for k in sorted(set(n_thoughts)):
        group = [i for i, n in enumerate(n_thoughts) if n == k]
        probs = _probe(model, tokenizer, method, [records[i] for i in group], k, batch_size) if k else \
            [torch.zeros(0, model.get_output_embeddings().out_features) for _ in group]
        for i, p in zip(group, probs):
            out[i] = p
    return out  # type: ignore[return-value]


@torch.no_grad()
def _probe(model, tokenizer, method: Method, records: Sequence[Record], n_thoughts: int, batch_size: int
           ) -> list[torch.Tensor]:
    device = next(model.parameters()).device
    examples = [method.prompt(r, n_thoughts) for r in tokenize_records(records, tokenizer)]
    check_prompts_fit(model, examples)
    head = model.get_output_embeddings()
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    for i in range(0, len(examples), batch_size):
        batch = collate(examples[i:i + batch_size], tokenizer.pad_token_id, method.thought_id, align="end")
        thought_mask = batch["thought_mask"].to(device)
        passed = method.forward_hidden(model, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                       thought_mask)
        first = int(thought_mask.any(0).nonzero()[0])
        # thought j (1-based) is the final hidden state it was made from: the one at the column before the
        # j-th placeholder (for PCCoT, in the pass before the last), before any latent projection
        thoughts = (passed.latent_sources if passed.latent_sources is not None
                    else passed.hidden[:, first - 1:first - 1 + n_thoughts])
        out.extend(torch.softmax(head(thoughts).float(), dim=-1).cpu())
    model.train(was_training)
    return out


def concept_token_ids(tokenizer, texts: Sequence[str]) -> list[int]:
    """The first token of each node's text (its name after ``is a``, or its id in the graph encoding)."""
    return [tokenizer(text, add_special_tokens=False)["input_ids"][0] for text in texts]


# Shortest distance from each node down to a leaf; kept under the name the analyses' callers use.
node_heights = Graph.heights


def frontier_values(record: Record, probs: torch.Tensor, tokenizer, node_texts: Sequence[str] | None = None
                    ) -> list[dict[str, Any]]:
    """One row per (thought i, node of the graph): the node's value and place in the graph.

    ``frontier`` marks the paper's frontier nodes (exactly i edges from the person at thought i); the
    other nodes are kept so the mass a thought puts at each depth can be read too: the person's own node
    at depth 0, and nodes the person never reaches at depth None.
    ``node_texts``: how the model writes each node (default: its name after a space).
    """
    graph = Graph.of(record)
    token_ids = concept_token_ids(tokenizer, node_texts or [" " + name for name in graph.names])
    depth = graph.distances_from(graph.root)
    heights = graph.heights()
    # one search per node, shared by every thought
    to_target = {node: graph.distances_from(node).get(graph.target) for node in range(len(graph.names))}
    rows = []
    for i in range(1, probs.shape[0] + 1):
        for node, distance in sorted(to_target.items()):
            d = depth.get(node)
            rows.append({"thought": i, "node": graph.names[node], "depth": d, "frontier": d == i,
                         "value": float(probs[i - 1, token_ids[node]]), "height": heights[node],
                         "leads_to_target": distance is not None, "distance_to_target": distance})
    return rows


def top_tokens(probs: torch.Tensor, tokenizer, k: int = 5) -> list[list[tuple[str, float]]]:
    """The k most likely tokens of each thought, with their probabilities."""
    values, ids = probs.topk(k, dim=-1)
    return [[(tokenizer.decode([t]), round(float(v), 4)) for t, v in zip(row_ids.tolist(), row_vals)]
            for row_ids, row_vals in zip(ids, values)]


def summarize(rows: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per thought: mean value of frontier nodes that lead to the target and of those that do not, and
    the mean probability mass (summed over a problem's nodes) at each depth from the person, over the
    problems that thought that far."""
    out: dict[int, dict[str, Any]] = {}
    for i in sorted({r["thought"] for r in rows}):
        mine = [r for r in rows if r["thought"] == i]
        # with adaptive thinking not every problem reaches thought i: average over those that do
        problems = max(len({r.get("problem", 0) for r in mine}), 1)
        frontier = [r for r in mine if r["frontier"]]
        good = [r["value"] for r in frontier if r["leads_to_target"]]
        bad = [r["value"] for r in frontier if not r["leads_to_target"]]
        reached = [r for r in mine if r["depth"] is not None]
        depths = sorted({r["depth"] for r in reached})
        out[i] = {"frontier_nodes": len(frontier),
                  "mean_value_leads_to_target": sum(good) / len(good) if good else float("nan"),
                  "mean_value_other": sum(bad) / len(bad) if bad else float("nan"),
                  "mass_by_depth": {d: sum(r["value"] for r in reached if r["depth"] == d) / problems
                                    for d in depths},
                  # method.thought_targets=reachable trains thought i toward R_i, the nodes within i hops (the
                  # root included): its mass on R_i against the nodes outside it, reachable farther away or
                  # never reached
                  "mass_within_hops": sum(r["value"] for r in reached if r["depth"] <= i) / problems,
                  "mass_beyond_hops": sum(r["value"] for r in reached if r["depth"] > i) / problems,
                  "mass_unreachable": sum(r["value"] for r in mine if r["depth"] is None) / problems}
    return out


def plot_frontier_values(rows: Sequence[dict[str, Any]], path: str, thoughts: Sequence[int] = (1, 2),
                         title: str = "") -> None:
    """Histograms of frontier-node values at the given thoughts, split by whether the node leads to the
    target (the paper's analysis), and the mass each thought puts on the nodes at each depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thoughts = [t for t in thoughts if any(r["thought"] == t for r in rows)]
    fig, axes = plt.subplots(1, len(thoughts) + 1, figsize=(4.2 * (len(thoughts) + 1), 3.4), squeeze=False)
    bins = [i / 20 for i in range(21)]
    for ax, t in zip(axes[0], thoughts):
        for leads, color, label in ((True, "#2e7d32", "leads to target"), (False, "#c62828", "does not")):
            values = [r["value"] for r in rows if r["thought"] == t and r["frontier"] and r["leads_to_target"] == leads]
            if values:
                ax.hist(values, bins=bins, alpha=0.6, color=color, label=f"{label} (n={len(values)})")
        ax.set_title(f"thought {t}: frontier node values", fontsize=10)
        ax.set_xlabel("probability of the node's name")
        ax.set_ylabel("nodes")
        ax.legend(fontsize=8, frameon=False)
    ax = axes[0][-1]
    summary = summarize(rows)
    for t, marker in zip(sorted(summary), "os^Dv<>"):
        mass = summary[t]["mass_by_depth"]
        ax.plot(list(mass), list(mass.values()), marker=marker, label=f"thought {t}")
    ax.set_title("probability mass on the nodes at each depth", fontsize=10)
    ax.set_xlabel("edges from the person")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mean summed probability")
    ax.legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    from ..data.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)
