"""ProsQA path analysis (Coconut paper, Section 5): what kind of reasoning path did the model write?

Each output falls in one class:

* **Correct Path**: the written steps are a valid chain of graph edges that ends at the target, and
  together with what went into the thoughts it is as short as possible;
* **Longer Path**: a valid chain to the target, but longer than the shortest path;
* **Hallucination**: a step names an edge the graph does not have, the chain is broken, or it starts from
  a node the question's person cannot reach;
* **Wrong Target**: a valid chain that ends somewhere other than the target;
* **Correct Label** / **Incorrect Label**: no steps written, only the answer, scored right or wrong.

With k continuous thoughts the model writes the rest of the path, so the written chain may start
at any node reachable from the person; a shortest answer then starts at distance k from it. The
classifier is a pure function of the record's graph fields (``idx_to_symbol``, ``edges``, ``root``,
``target``), so it works on generated and official files alike.
"""

from __future__ import annotations

import re
from typing import Any

from ..data.graph import ProsQAGraph
from ..data.records import Record
from ..errors import UsageError
from ..evaluation.answers import is_correct

CORRECT_PATH = "Correct Path"
LONGER_PATH = "Longer Path"
HALLUCINATION = "Hallucination"
WRONG_TARGET = "Wrong Target"
CORRECT_LABEL = "Correct Label"
INCORRECT_LABEL = "Incorrect Label"
PATH_CLASSES = (CORRECT_PATH, LONGER_PATH, HALLUCINATION, WRONG_TARGET, CORRECT_LABEL, INCORRECT_LABEL)

_STEP_RE = re.compile(r"(?:Every )?(\w+) is an? (\w+)\.")
MARKER_RE = re.compile(r"<[^<>\s]+>")  # method markers and latent codes are not steps


class Graph(ProsQAGraph):
    """A record's graph as the analyses read it: the same graph, but a record without the fields they
    need (they need the target too) is refused with one error naming them."""

    @classmethod
    def of(cls, record: Record) -> "Graph":
        missing = [k for k in ("idx_to_symbol", "edges", "root", "target") if k not in record.extra]
        if missing:
            raise UsageError(f"path analysis needs ProsQA graph fields; the record lacks {', '.join(missing)}")
        return super().of(record)


def written_steps(generated: str) -> list[str]:
    """The step sentences of an output: every sentence before the ``#`` answer line, markers removed."""
    body = MARKER_RE.sub(" ", generated.split("#", 1)[0])
    return [s.strip() + "." for s in body.replace("\n", " ").split(".") if s.strip()]


def classify_path(record: Record, generated: str) -> str:
    """One of :data:`PATH_CLASSES` for a model's output (the text it wrote after the prompt)."""
    steps = written_steps(generated)
    if not steps:
        return CORRECT_LABEL if is_correct(generated, record) else INCORRECT_LABEL
    graph = Graph.of(record)
    index = {name: i for i, name in enumerate(graph.names)}
    chain: list[int] = []
    for sentence in steps:
        m = _STEP_RE.fullmatch(sentence)
        if m is None or m.group(1) not in index or m.group(2) not in index:
            return HALLUCINATION
        parent, child = index[m.group(1)], index[m.group(2)]
        if not graph.has_edge(parent, child) or (chain and chain[-1] != parent):
            return HALLUCINATION
        if not chain:
            chain.append(parent)
        chain.append(child)
    from_root = graph.distances_from(graph.root)
    if chain[0] not in from_root:
        return HALLUCINATION
    if chain[-1] != graph.target:
        return WRONG_TARGET
    written = from_root[chain[0]] + len(chain) - 1
    return CORRECT_PATH if written == from_root[graph.target] else LONGER_PATH


def path_counts(records: list[Record], generations: list[str]) -> dict[str, int]:
    counts = {c: 0 for c in PATH_CLASSES}
    for record, text in zip(records, generations, strict=True):
        counts[classify_path(record, text)] += 1
    return counts


def plot_path_classes(table: dict[int | str, dict[str, Any]], path: str, title: str = "") -> None:
    """Stacked bars, one per number of thoughts k (in the table's order; ``auto`` for adaptive thinking),
    of the share of each class (the paper's Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(table)
    colors = ("#2e7d32", "#81c784", "#c62828", "#ef6c00", "#1565c0", "#90a4ae")
    fig, ax = plt.subplots(figsize=(1.1 * len(ks) + 3.5, 3.6))
    bottom = [0.0] * len(ks)
    for name, color in zip(PATH_CLASSES, colors):
        shares = [100 * table[k][name] / max(sum(table[k][c] for c in PATH_CLASSES), 1) for k in ks]
        ax.bar([str(k) for k in ks], shares, bottom=bottom, color=color, label=name, width=0.65)
        bottom = [b + s for b, s in zip(bottom, shares)]
    ax.set_xlabel("continuous thoughts at inference (k)")
    ax.set_ylabel("% of problems")
    ax.set_ylim(0, 100)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    from ..data.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)
