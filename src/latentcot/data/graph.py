"""One model of a ProsQA graph, for everything that walks one.

The generator grows and checks graphs, the encodings write them as node ids and read them back, the
per-thought targets and the curriculum's stage targets take hop sets from them, and the analyses measure
distances in them. They all go through :class:`Graph` (nodes and edges: children, parents, distances,
hop sets, frontiers, heights, topological rounds) and :class:`ProsQAGraph` (a problem's graph: node names,
the asked person, the two options, and the sentences ProsQA states it in), so that the data, the model's
targets and the analyses cannot disagree on what "k hops from the person" or "a person" means.
"""

from __future__ import annotations

import re
from collections import deque
from functools import cached_property
from typing import Iterable, Sequence

from .records import Record

__all__ = ["ASK_RE", "FACT_RE", "GRAPH_FIELDS", "Graph", "ProsQAGraph", "frontier_nodes", "reachable_sets"]

# The record fields a ProsQA problem keeps its graph in (official files and our generator alike).
GRAPH_FIELDS = ("idx_to_symbol", "edges", "root", "target", "neg_target")

# The sentence forms ProsQAGraph writes, for the checker and the encodings to read back.
FACT_RE = re.compile(r"(?:Every (\w+)|(\w+)) is a (\w+)\.")
ASK_RE = re.compile(r"Is (\w+) a (\w+) or (\w+)\?")


class Graph:
    """A directed graph on the nodes 0 .. ``size`` - 1 (more if an edge names a larger node).

    ``children`` and ``parents`` list each node's neighbours in the order of ``edges``; the generator draws
    from them with its random stream, so that order is part of what makes a seed reproducible."""

    def __init__(self, edges: Iterable[Sequence[int]], size: int = 0):
        self.edges: list[tuple[int, int]] = [(p, c) for p, c in edges]
        self.size = max([size, *(max(edge) + 1 for edge in self.edges)])
        self.children: list[list[int]] = [[] for _ in range(self.size)]
        self.parents: list[list[int]] = [[] for _ in range(self.size)]
        for parent, child in self.edges:
            self.children[parent].append(child)
            self.parents[child].append(parent)

    @classmethod
    def from_parents(cls, parents: Sequence[Sequence[int]]) -> "Graph":
        """The graph whose node i has the parents ``parents[i]`` (children then come in node order)."""
        return cls([(p, child) for child, ps in enumerate(parents) for p in ps], len(parents))

    @cached_property
    def _edge_set(self) -> frozenset[tuple[int, int]]:
        return frozenset(self.edges)

    def has_edge(self, parent: int, child: int) -> bool:
        return (parent, child) in self._edge_set

    def _search(self, sources: Iterable[int], neighbours: list[list[int]]) -> dict[int, int]:
        # Breadth-first, so each node's first visit is at its fewest hops from the nearest source.
        dist = {source: 0 for source in sources}
        queue = deque(dist)
        while queue:
            node = queue.popleft()
            for nxt in neighbours[node]:
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        return dist

    def distances_from(self, source: int) -> dict[int, int]:
        """Edge count of a shortest path from ``source`` to every node it reaches (itself at 0)."""
        return self._search([source], self.children)

    def reachable_sets(self, root: int, hops: int) -> list[list[int]]:
        """For k = 1 .. ``hops``: the sorted nodes within k edges of ``root`` (root included)."""
        dist = self.distances_from(root)
        return [sorted(node for node, d in dist.items() if d <= k) for k in range(1, hops + 1)]

    def ancestors(self, node: int) -> set[int]:
        """The nodes with a path to ``node``, itself included."""
        return set(self._search([node], self.parents))

    def frontier(self, root: int, target: int, depth: int) -> list[int]:
        """The nodes ``depth`` edges from ``root`` along some path that can go on to ``target`` (sorted).

        Unlike the nodes at distance ``depth``, a node here may also lie closer to the root by another
        path: Zhu, Hao et al. (2025, "Reasoning by Superposition"; their released code) step through paths,
        not distances, when they pick the node that supervises stage ``depth`` - 1 of their curriculum."""
        reaches_target = self.ancestors(target)
        layer = {root}
        for _ in range(depth):
            layer = {c for node in layer for c in self.children[node] if c in reaches_target}
        return sorted(layer)

    def heights(self) -> list[int]:
        """Shortest distance from each node down to a leaf (a node without children)."""
        leaves = [node for node in range(self.size) if not self.children[node]]
        height = self._search(leaves, self.parents)
        if len(height) < self.size:
            # only a cycle can keep a node from every leaf
            stuck = min(set(range(self.size)) - set(height))
            raise ValueError(f"node {stuck} reaches no leaf: the graph has a cycle")
        return [height[node] for node in range(self.size)]

    def layers(self) -> list[list[int]] | None:
        """Topological rounds: first the nodes without parents, then each round the nodes whose parents
        all came in earlier rounds, each round in node order. None when a cycle leaves nodes out."""
        indegree = [len(ps) for ps in self.parents]
        layer = [node for node in range(self.size) if not indegree[node]]
        rounds = []
        while layer:
            rounds.append(layer)
            ready = []
            for node in layer:
                for child in self.children[node]:
                    indegree[child] -= 1
                    if not indegree[child]:
                        ready.append(child)
            layer = sorted(ready)
        return rounds if sum(map(len, rounds)) == self.size else None


class ProsQAGraph(Graph):
    """A ProsQA problem's graph: node ``names`` (``idx_to_symbol``), the asked person ``root`` and the
    options ``target`` (reachable from it) and ``neg_target`` (not), with the sentences that state it."""

    def __init__(self, names: Sequence[str], edges: Iterable[Sequence[int]], root: int,
                 target: int | None = None, neg_target: int | None = None):
        super().__init__(edges, len(names))
        self.names = tuple(names)
        self.root, self.target, self.neg_target = root, target, neg_target

    @classmethod
    def of(cls, record: Record) -> "ProsQAGraph":
        """The graph of a record's ``idx_to_symbol``, ``edges`` and ``root`` (``target`` and ``neg_target``
        when it has them)."""
        extra = record.extra
        return cls(extra["idx_to_symbol"], extra["edges"], int(extra["root"]), extra.get("target"),
                   extra.get("neg_target"))

    def is_person(self, node: int) -> bool:
        # The generator's rule, which the official files follow too: the nodes without parents are people.
        return not self.parents[node]

    def fact(self, parent: int, child: int) -> str:
        """The sentence that states an edge: ``Alex is a X.`` from a person, ``Every X is a Y.`` otherwise."""
        if self.is_person(parent):
            return f"{self.names[parent]} is a {self.names[child]}."
        return f"Every {self.names[parent]} is a {self.names[child]}."

    def question(self, facts: Sequence[str], first: int, second: int) -> str:
        """The question: the facts as given, then ``Is <root> a <first> or <second>?``."""
        return f"{' '.join(facts)} Is {self.names[self.root]} a {self.names[first]} or {self.names[second]}?".strip()

    def answer(self, node: int) -> str:
        """The answer that names ``node`` as the option the root is."""
        return f"{self.names[self.root]} is a {self.names[node]}."


def frontier_nodes(edges: Sequence[tuple[int, int]], root: int, target: int, depth: int) -> list[int]:
    """:meth:`Graph.frontier` of a list of edges (``method.stage_target=frontier``: stage k is supervised
    with ONE node drawn from these at depth k+1)."""
    return Graph(edges, max(root, target) + 1).frontier(root, target, depth)


def reachable_sets(edges: Sequence[tuple[int, int]], root: int, hops: int) -> list[list[int]]:
    """:meth:`Graph.reachable_sets` of a list of edges."""
    return Graph(edges, root + 1).reachable_sets(root, hops)
