"""Deterministic ProsQA generator (Coconut, Hao et al. 2024, Appendix A.2), plus a record checker.

A problem is a random DAG whose sources are people and whose other nodes are fictional "-pus"
concepts.  Every edge is stated as a fact, the facts are shuffled, and the question asks
``Is <person> a <A> or <B>?`` where exactly one of the two leaves is reachable from the person.

How the graph grows (the paper's algorithm, as read from its description and checked against the
official file ``prosqa_valid.json``):

* Nodes 0 and 1 are people.  Every node carries a label recording which of them reach it
  (bit 1: node 0, bit 2: node 1); the label of a new node is the OR of its parents' labels.
* Each new node draws Poisson(``parent_rate``) parents, weighted by ``depth * depth_weight + 1``
  so that the graph grows deep rather than bushy.  With probability ``exclusive_prob`` the
  parents may only come from nodes node 1 does not reach, with the same probability only from
  nodes node 0 does not reach, otherwise from anywhere.  These exclusive branches are what make
  a leaf reachable from one person and not the other.
* A node that drew no parents is a new person; one that also never got a child says nothing and
  is dropped, which is why the official node counts spread below the grown size.
* Of nodes 0 and 1, the one whose exclusive leaves lie deeper is asked about (the official file
  never asks about the shallower one); the true option is one of its farthest exclusive leaves,
  the false option any leaf only the other one reaches.  So the false option is always reachable
  from some other person and never shares a node with the proof.
* Generation draws a step count first and rejects graphs until one needs exactly that many steps,
  which pins the step distribution to ``step_weights`` rather than to whatever the growth gives.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, deque
from dataclasses import dataclass
from statistics import mean
from typing import Any, Iterable, Sequence

from latentcot.data.records import Record

__all__ = [
    "CONCEPTS",
    "PERSONS",
    "ProsQAOptions",
    "generate",
    "check_record",
    "graph_stats",
]

# The 38 concept words and 17 person names used by the official data set.
CONCEPTS: tuple[str, ...] = (
    "bompus", "boompus", "brimpus", "chorpus", "dumpus", "felpus", "fompus", "gerpus",
    "gorpus", "grimpus", "gwompus", "hilpus", "impus", "jelpus", "jompus", "kerpus",
    "lempus", "lorpus", "numpus", "quimpus", "rempus", "rompus", "rorpus", "scrompus",
    "shumpus", "sterpus", "storpus", "terpus", "timpus", "tumpus", "vumpus", "worpus",
    "wumpus", "yerpus", "yimpus", "yumpus", "zhorpus", "zumpus",
)
PERSONS: tuple[str, ...] = (
    "Alex", "Bob", "Carol", "Davis", "Eva", "Fae", "Gabriel", "Jack", "Max",
    "Oliver", "Polly", "Rex", "Sally", "Sam", "Stella", "Tom", "Wren",
)


@dataclass
class ProsQAOptions:
    """Knobs of the generator; the defaults reproduce the official ProsQA statistics."""

    min_nodes: int = 14
    """Fewest nodes a kept graph may have (after dropping people that got no child)."""
    max_nodes: int = 28
    """Nodes grown per graph; the kept graph has at most this many."""
    min_edges: int = 16
    """Fewest edges (facts) a kept graph may have."""
    max_edges: int = 54
    """Most edges (facts) a kept graph may have."""
    min_steps: int = 3
    """Fewest reasoning steps (shortest-path length from the person to the true option)."""
    max_steps: int = 6
    """Most reasoning steps."""
    step_weights: str = "41,44,13,2"
    """Comma-separated relative frequencies of min_steps..max_steps; empty keeps the natural ones."""
    parent_rate: float = 1.5
    """Mean of the Poisson number of parents drawn by each new node."""
    depth_weight: float = 1.5
    """A candidate parent at depth d is picked with weight d * depth_weight + 1."""
    exclusive_prob: float = 0.35
    """Chance that a new node may not descend from node 1 (and, separately, from node 0)."""
    true_first_prob: float = 0.5
    """Chance that the true option is named first in the question."""
    max_tries: int = 200000
    """Rejected graphs tolerated per problem before giving up with an error."""

    def weights(self) -> list[float] | None:
        """Parsed ``step_weights`` (one per step count), or None for the natural distribution."""
        text = self.step_weights.strip()
        if not text:
            return None
        try:
            values = [float(part) for part in text.split(",")]
        except ValueError:
            raise ValueError(
                f"step_weights must be comma-separated numbers, got {self.step_weights!r}"
            ) from None
        return values

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent option."""
        if self.min_nodes < 5:
            # root, one intermediate, target, the other person and its leaf: fewer cannot pose a question.
            raise ValueError(f"min_nodes must be at least 5, got {self.min_nodes}")
        if self.max_nodes < self.min_nodes:
            raise ValueError(f"max_nodes ({self.max_nodes}) is below min_nodes ({self.min_nodes})")
        if self.max_nodes - 2 > len(CONCEPTS):
            raise ValueError(
                f"max_nodes ({self.max_nodes}) needs more than the {len(CONCEPTS)} concept names; "
                f"use at most {len(CONCEPTS) + 2}"
            )
        if self.min_edges < 0 or self.max_edges < self.min_edges:
            raise ValueError(
                f"need 0 <= min_edges <= max_edges, got min_edges={self.min_edges}, max_edges={self.max_edges}"
            )
        if self.min_steps < 1 or self.max_steps < self.min_steps:
            raise ValueError(
                f"need 1 <= min_steps <= max_steps, got min_steps={self.min_steps}, max_steps={self.max_steps}"
            )
        if self.max_steps + 3 > self.max_nodes:
            # A path of s steps has s + 1 nodes, plus the other person and its leaf.
            raise ValueError(
                f"max_steps ({self.max_steps}) needs at least {self.max_steps + 3} nodes, "
                f"but max_nodes is {self.max_nodes}"
            )
        if self.max_edges < self.max_steps + 1:
            raise ValueError(
                f"max_edges ({self.max_edges}) cannot hold a {self.max_steps}-step path and a false option"
            )
        weights = self.weights()
        if weights is not None:
            span = self.max_steps - self.min_steps + 1
            if len(weights) != span:
                raise ValueError(
                    f"step_weights has {len(weights)} values but min_steps..max_steps "
                    f"({self.min_steps}..{self.max_steps}) has {span} step counts"
                )
            if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
                raise ValueError(f"step_weights must be non-negative with a positive sum, got {self.step_weights!r}")
        if not self.parent_rate > 0:
            raise ValueError(f"parent_rate must be positive, got {self.parent_rate}")
        if not self.depth_weight >= 0:
            raise ValueError(f"depth_weight must be non-negative, got {self.depth_weight}")
        if not 0 < self.exclusive_prob <= 0.5:
            # Two exclusive branches share the unit interval; with none, no leaf separates the people.
            raise ValueError(f"exclusive_prob must be in (0, 0.5], got {self.exclusive_prob}")
        if not 0 <= self.true_first_prob <= 1:
            raise ValueError(f"true_first_prob must be in [0, 1], got {self.true_first_prob}")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be positive, got {self.max_tries}")


# --------------------------------------------------------------------------------------------
# Generation


def _poisson(rng: random.Random, rate: float) -> int:
    # Knuth's method: rates here are small, so the loop is a handful of draws.
    limit = math.exp(-rate)
    k, prod = 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def _weighted_sample(rng: random.Random, items: list[int], weights: list[float], k: int) -> list[int]:
    # Sequential draws without replacement, i.e. numpy.random.choice(replace=False, p=...).
    items, weights = list(items), list(weights)
    chosen = []
    for _ in range(k):
        x = rng.random() * sum(weights)
        i = 0
        acc = weights[0]
        while acc < x and i < len(items) - 1:
            i += 1
            acc += weights[i]
        chosen.append(items.pop(i))
        weights.pop(i)
    return chosen


def _bfs(children: Sequence[Sequence[int]], source: int) -> dict[int, int]:
    dist = {source: 0}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        for child in children[node]:
            if child not in dist:
                dist[child] = dist[node] + 1
                queue.append(child)
    return dist


@dataclass
class _Graph:
    parents: list[list[int]]
    labels: list[int]


_X={'p0':False,'dmax':True,'same':False,'p3':True}
def _grow(rng: random.Random, n_nodes: int, opts: ProsQAOptions) -> _Graph:
    parents: list[list[int]] = [[], []]
    labels = [1, 2]
    depth = [0, 0]
    # Candidate pools by label: 0 reached by neither person, 1 only by node 0, 2 only by node 1.
    pools: dict[int, list[int]] = {0: [], 1: [0], 2: [1], 3: []}
    for idx in range(2, n_nodes):
        k = _poisson(rng, opts.parent_rate)
        u = rng.random()
        if u < opts.exclusive_prob:
            candidates = (pools[0] if _X['p0'] else []) + pools[2]
        elif u < opts.exclusive_prob + _X['b']:
            candidates = (pools[0] if _X['p0'] else []) + pools[1]
        else:
            candidates = list(range(idx)) if _X['p3'] else pools[0]+pools[1]+pools[2]
        k = min(k, len(candidates))
        chosen = _weighted_sample(rng, candidates, [depth[c] * opts.depth_weight + 1 for c in candidates], k)
        label = 0
        for p in chosen:
            label |= labels[p]
        parents.append(sorted(chosen))
        labels.append(label)
        depth.append((max if _X['dmax'] else min)((depth[p] for p in chosen), default=-1) + 1)
        pools[label].append(idx)
    return _Graph(parents, labels)


def _fact(names: Sequence[str], parent_is_person: bool, parent: int, child: int) -> str:
    if parent_is_person:
        return f"{names[parent]} is a {names[child]}."
    return f"Every {names[parent]} is a {names[child]}."


def _try_problem(rng: random.Random, opts: ProsQAOptions, want_steps: int | None) -> Record | None:
    graph = _grow(rng, opts.max_nodes, opts)
    n = len(graph.parents)
    children: list[list[int]] = [[] for _ in range(n)]
    for child, ps in enumerate(graph.parents):
        for p in ps:
            children[p].append(child)
    if not children[0] or not children[1]:
        return None
    keep = [i for i in range(n) if graph.parents[i] or children[i]]
    if len(keep) < opts.min_nodes:
        return None
    n_edges = sum(len(ps) for ps in graph.parents)
    if not opts.min_edges <= n_edges <= opts.max_edges:
        return None

    leaves = [i for i in keep if not children[i] and graph.parents[i]]
    own = {0: [i for i in leaves if graph.labels[i] == 1], 1: [i for i in leaves if graph.labels[i] == 2]}
    if not own[0] or not own[1]:
        return None
    dist = {0: _bfs(children, 0), 1: _bfs(children, 1)}
    deepest = {s: max(dist[s][i] for i in own[s]) for s in (0, 1)}
    if deepest[0] != deepest[1]:
        root = 0 if deepest[0] > deepest[1] else 1
    else:
        root = rng.randrange(2)
    steps_needed = deepest[root]
    if want_steps is not None and steps_needed != want_steps:
        return None
    if not opts.min_steps <= steps_needed <= opts.max_steps:
        return None
    persons = [i for i in keep if not graph.parents[i]]
    if len(persons) > len(PERSONS):
        return None

    other = 1 - root
    target = rng.choice([i for i in own[root] if dist[root][i] == steps_needed])
    neg_target = rng.choice(own[other])

    # A uniformly random shortest path: walk back from the target, choosing each predecessor in
    # proportion to the number of shortest paths that reach it.
    d_root = dist[root]
    n_paths = {root: 1}
    for node in sorted(d_root, key=d_root.__getitem__):
        for child in children[node]:
            if d_root[child] == d_root[node] + 1:
                n_paths[child] = n_paths.get(child, 0) + n_paths[node]
    path = [target]
    while path[-1] != root:
        preds = [p for p in graph.parents[path[-1]] if d_root.get(p) == d_root[path[-1]] - 1]
        path.append(rng.choices(preds, weights=[n_paths[p] for p in preds])[0])
    path.reverse()

    # Renumber in generation order so indices stay topological, as in the official file.
    new_index = {old: new for new, old in enumerate(keep)}
    person_names = rng.sample(PERSONS, len(persons))
    concept_names = rng.sample(CONCEPTS, len(keep) - len(persons))
    names: list[str] = []
    pi = ci = 0
    for old in keep:
        if graph.parents[old]:
            names.append(concept_names[ci])
            ci += 1
        else:
            names.append(person_names[pi])
            pi += 1
    edges = [[new_index[p], new_index[c]] for c in keep for p in graph.parents[c]]
    is_person = [not graph.parents[old] for old in keep]
    facts = [_fact(names, is_person[p], p, c) for p, c in edges]
    rng.shuffle(facts)

    r, t, f = new_index[root], new_index[target], new_index[neg_target]
    first, second = (t, f) if rng.random() < opts.true_first_prob else (f, t)
    question = " ".join(facts) + f" Is {names[r]} a {names[first]} or {names[second]}?"
    steps = [_fact(names, is_person[new_index[a]], new_index[a], new_index[b]) for a, b in zip(path, path[1:])]
    return Record(
        question=question,
        steps=steps,
        answer=f"{names[r]} is a {names[t]}.",
        extra={"idx_to_symbol": names, "edges": edges, "root": r, "target": t, "neg_target": f},
    )


def generate(n: int, seed: int = 0, options: ProsQAOptions | None = None) -> list[Record]:
    """Generate ``n`` ProsQA problems; the same (n, seed, options) always gives the same list."""
    opts = options if options is not None else ProsQAOptions()
    opts.validate()
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    weights = opts.weights()
    step_counts = list(range(opts.min_steps, opts.max_steps + 1))
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        want = rng.choices(step_counts, weights=weights)[0] if weights is not None else None
        for _ in range(opts.max_tries):
            record = _try_problem(rng, opts, want)
            if record is not None:
                records.append(record)
                break
        else:
            wanted = f"{want} steps" if want is not None else f"{opts.min_steps}..{opts.max_steps} steps"
            raise ValueError(
                f"no graph with {wanted}, {opts.min_nodes}..{opts.max_nodes} nodes and "
                f"{opts.min_edges}..{opts.max_edges} edges in {opts.max_tries} tries; "
                "loosen the step, node or edge limits"
            )
    return records


# --------------------------------------------------------------------------------------------
# Checking

_FACT_RE = re.compile(r"(?:Every (\w+)|(\w+)) is a (\w+)\.")
_ASK_RE = re.compile(r"Is (\w+) a (\w+) or (\w+)\?")


def _get(record: Record | dict[str, Any], key: str) -> Any:
    if isinstance(record, Record):
        if key in ("question", "steps", "answer"):
            return getattr(record, key)
        value = record.extra.get(key)
    else:
        value = record.get(key)
    if value is None:
        raise ValueError(f"missing field '{key}'")
    return value


def check_record(record: Record | dict[str, Any]) -> None:
    """Check a ProsQA record (generated or official) against its own graph fields.

    Raises ValueError naming the first problem: facts vs. edges, option reachability, the proof
    steps (each an edge fact, chained from the person to the true option, as short as possible),
    the answer and the question's final sentence.
    """
    question: str = _get(record, "question")
    steps: list[str] = list(_get(record, "steps"))
    answer: str = _get(record, "answer")
    names: list[str] = list(_get(record, "idx_to_symbol"))
    edges = [tuple(e) for e in _get(record, "edges")]
    root, target, neg = (_get(record, k) for k in ("root", "target", "neg_target"))

    n = len(names)
    if len(set(names)) != n:
        raise ValueError("idx_to_symbol has repeated names")
    for key, idx in (("root", root), ("target", target), ("neg_target", neg)):
        if not isinstance(idx, int) or not 0 <= idx < n:
            raise ValueError(f"{key} {idx!r} is not a node index in 0..{n - 1}")
    parents: list[list[int]] = [[] for _ in range(n)]
    children: list[list[int]] = [[] for _ in range(n)]
    for e in edges:
        if len(e) != 2 or not all(isinstance(x, int) and 0 <= x < n for x in e):
            raise ValueError(f"edge {list(e)} is not a pair of node indices in 0..{n - 1}")
        parents[e[1]].append(e[0])
        children[e[0]].append(e[1])
    if len(set(edges)) != len(edges):
        raise ValueError("edges has duplicates")
    if parents[root]:
        raise ValueError(f"root {names[root]} has a parent; the asked node must be a person")

    def sentence(p: int, c: int) -> str:
        return _fact(names, not parents[p], p, c)

    edge_facts = {sentence(p, c): (p, c) for p, c in edges}

    ask_at = question.rfind(" Is ")
    if ask_at < 0:
        raise ValueError("question has no final 'Is X a A or B?' sentence")
    body, ask = question[:ask_at], question[ask_at + 1 :]
    m = _ASK_RE.fullmatch(ask)
    if m is None:
        raise ValueError(f"question ends with {ask!r}, not 'Is X a A or B?'")
    if m.group(1) != names[root]:
        raise ValueError(f"question asks about {m.group(1)}, but root is {names[root]}")
    if {m.group(2), m.group(3)} != {names[target], names[neg]} or names[target] == names[neg]:
        raise ValueError(
            f"question offers {m.group(2)} / {m.group(3)}, but the options are "
            f"{names[target]} (target) and {names[neg]} (neg_target)"
        )

    facts = _FACT_RE.findall(body)
    rebuilt = " ".join(f"Every {a} is a {c}." if a else f"{b} is a {c}." for a, b, c in facts)
    if rebuilt != body:
        raise ValueError("question body is not a sequence of 'Every X is a Y.' / 'P is a Y.' facts")
    fact_texts = [f"Every {a} is a {c}." if a else f"{b} is a {c}." for a, b, c in facts]
    counts = Counter(fact_texts)
    repeated = [t for t, k in counts.items() if k > 1]
    if repeated:
        raise ValueError(f"fact stated more than once: {repeated[0]!r}")
    missing = [t for t in edge_facts if t not in counts]
    if missing:
        raise ValueError(f"edge fact not in the question: {missing[0]!r}")
    extra = [t for t in fact_texts if t not in edge_facts]
    if extra:
        raise ValueError(f"question fact is not an edge: {extra[0]!r}")

    # Cycles would make "shortest path" and the leaf options ill-defined.
    indeg = [len(p) for p in parents]
    ready = [i for i in range(n) if indeg[i] == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for c in children[node]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    if seen != n:
        raise ValueError("edges contain a cycle")

    dist = _bfs(children, root)
    reach_t, reach_f = target in dist, neg in dist
    if reach_t and reach_f:
        raise ValueError(f"both options {names[target]} and {names[neg]} are reachable from {names[root]}")
    if not reach_t:
        raise ValueError(f"target {names[target]} is not reachable from {names[root]}")
    for key, idx in (("target", target), ("neg_target", neg)):
        if children[idx]:
            raise ValueError(f"{key} {names[idx]} is not a leaf")

    if not steps:
        raise ValueError("steps is empty")
    at = root
    for i, step in enumerate(steps):
        edge = edge_facts.get(step)
        if edge is None:
            raise ValueError(f"step {i} {step!r} is not an edge fact")
        if edge[0] != at:
            raise ValueError(f"step {i} {step!r} does not continue from {names[at]}")
        at = edge[1]
    if at != target:
        raise ValueError(f"steps end at {names[at]}, not at the target {names[target]}")
    if len(steps) != dist[target]:
        raise ValueError(f"steps take {len(steps)} hops; the shortest path has {dist[target]}")

    expected = f"{names[root]} is a {names[target]}."
    if answer != expected:
        raise ValueError(f"answer {answer!r} should be {expected!r}")


def _summary(values: Sequence[int]) -> dict[str, Any]:
    return {
        "mean": mean(values) if values else float("nan"),
        "min": min(values, default=None),
        "max": max(values, default=None),
        "hist": dict(sorted(Counter(values).items())),
    }


def graph_stats(records: Iterable[Record | dict[str, Any]]) -> dict[str, Any]:
    """Node, edge, step and person counts (mean/min/max/histogram) and the true-option-first share."""
    nodes, edges, steps, persons, first = [], [], [], [], []
    for rec in records:
        names = _get(rec, "idx_to_symbol")
        edge_list = _get(rec, "edges")
        nodes.append(len(names))
        edges.append(len(edge_list))
        steps.append(len(_get(rec, "steps")))
        has_parent = {c for _, c in edge_list}
        persons.append(sum(1 for i in range(len(names)) if i not in has_parent))
        m = _ASK_RE.search(_get(rec, "question"))
        first.append(m is not None and m.group(2) == names[_get(rec, "target")])
    return {
        "n": len(nodes),
        "nodes": _summary(nodes),
        "edges": _summary(edges),
        "steps": _summary(steps),
        "persons": _summary(persons),
        "true_first": mean(first) if first else float("nan"),
    }
