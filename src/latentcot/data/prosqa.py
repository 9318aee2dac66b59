"""Deterministic ProsQA generator (Coconut, Hao et al. 2024, Appendix A.2), plus a record checker.

A problem is a random DAG whose sources are people and whose other nodes are fictional "-pus"
concepts.  Every edge is stated as a fact (``Every X is a Y.`` / ``Alex is a Y.``), the facts are
shuffled, and the question asks ``Is <person> a <A> or <B>?``: exactly one of the two leaves is
reachable from the person.  ``steps`` is one shortest path, one fact per step.

The growth follows the paper's recipe; where its description leaves room, the choices below were
fitted to the official ``prosqa_valid.json`` (300 problems):

* Nodes 0 and 1 are people.  Every node carries a label saying which of the two reach it (bit 1:
  node 0, bit 2: node 1); a new node's label is the OR of its parents' labels.
* Each new node draws Poisson(``parent_rate``) parents, weighted by ``depth * depth_weight + 1``
  so the graph grows deep rather than bushy.  With probability ``only_b_prob`` the parents must be
  nodes only node 1 reaches, with ``only_a_prob`` nodes only node 0 reaches, otherwise any node
  that not both reach.  The paper's "0.35 each" is symmetric, but the official file is not: node
  1's side is larger (52% vs 39% of nodes) and is asked about 65% of the time; and in it nodes
  reached by both people almost never get a child, nor do extra people (2.5 people per graph).
  0.45 / 0.33 and these pools reproduce all of that.
* A node that drew no parents is an extra person; one that never gets a child says nothing and is
  dropped, which is what spreads the node counts below the grown size.
* Of nodes 0 and 1, the one whose exclusive leaves lie deeper is asked about (the official file
  never asks about the shallower one, ties aside); the true option is one of its farthest exclusive
  leaves, the false option any leaf only the other one reaches.  So the false option is always
  reachable from another person, and the other main person reaches no node of the proof.
* ``generate`` draws each problem's step count first and rejects graphs until one needs exactly
  that many steps, pinning the step distribution instead of leaving it to the growth.  Graphs
  outside the node and edge limits are rejected too.
* Step and edge limits left at 0 / "auto" follow ``max_nodes``: the official 3..6 steps
  (41/44/13/2%) and 16..54 edges at 28 nodes; 2..4 steps as they come, and edge limits scaled
  down, for the small graphs of a CPU demo.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, replace
from statistics import mean
from typing import Any, Iterable, Sequence

from ..config import option
from ..errors import UsageError
from .graph import ASK_RE, FACT_RE, Graph, ProsQAGraph
from .records import Record

__all__ = [
    "CONCEPTS",
    "PERSONS",
    "OFFICIAL_STEP_WEIGHTS",
    "ProsQAOptions",
    "generate",
    "check_record",
    "graph_stats",
]

# The 38 concept words and 17 person names of the official data set.
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

# Share of 3, 4, 5 and 6 steps in the official test + valid sets (800 problems).
OFFICIAL_STEP_WEIGHTS = "41,44,13,2"
_OFFICIAL_STEPS = (3, 6)
_OFFICIAL_NODES = 28
_OFFICIAL_EDGES = (16, 54)
# Below this many grown nodes a 6-step proof is too rare to ask for; small graphs get 2..4 steps.
_SMALL_GRAPH = 20
_SMALL_STEPS = (2, 4)


@dataclass
class ProsQAOptions:
    # option() carries each flag's CLI help. 0 / "auto" values are derived from
    # max_nodes so that changing only the graph size (e.g. 10..14 nodes for a CPU demo) still works.
    min_nodes: int = option(14, "fewest nodes a kept graph may have")
    max_nodes: int = option(28, "nodes grown per graph; people that get no child are dropped")
    min_steps: int = option(0, "fewest proof steps; 0 = auto (3 if max_nodes >= 20, else 2)")
    max_steps: int = option(0, "most proof steps; 0 = auto (6 if max_nodes >= 20, else 4)")
    step_weights: str = option("auto", "comma-separated shares of min_steps..max_steps; auto = official 41,44,13,2 "
                          "for steps 3..6, else as the graphs come; empty = as the graphs come")
    min_edges: int = option(0, "fewest edges (facts); 0 = auto (16 scaled by max_nodes / 28)")
    max_edges: int = option(0, "most edges (facts); 0 = auto (54 scaled by max_nodes / 28)")
    parent_rate: float = option(1.5, "mean of the Poisson number of parents per node")
    depth_weight: float = option(1.5, "a candidate parent at depth d has weight d * depth_weight + 1")
    only_a_prob: float = option(0.33, "chance a new node's parents are all reached by node 0 only")
    only_b_prob: float = option(0.45, "chance a new node's parents are all reached by node 1 only")
    true_first_prob: float = option(0.5, "chance the true option is named first in the question")
    max_tries: int = option(20000, "rejected graphs per problem before giving up with an error")

    def resolved(self) -> "ProsQAOptions":
        """A copy with every 0 / "auto" value replaced by the value it stands for."""
        small = self.max_nodes < _SMALL_GRAPH
        lo, hi = _SMALL_STEPS if small else _OFFICIAL_STEPS
        # A path of s steps needs s + 1 nodes, plus the other person and its leaf.
        hi = max(1, min(hi, self.max_nodes - 3))
        max_steps = self.max_steps or max(hi, self.min_steps)
        min_steps = self.min_steps or min(lo, max_steps)
        weights = self.step_weights
        if weights.strip().lower() == "auto":
            weights = OFFICIAL_STEP_WEIGHTS if (min_steps, max_steps) == _OFFICIAL_STEPS else ""
        scale = self.max_nodes / _OFFICIAL_NODES
        min_edges = self.min_edges or round(_OFFICIAL_EDGES[0] * scale)
        max_edges = self.max_edges or max(min_edges, round(_OFFICIAL_EDGES[1] * scale))
        return replace(self, min_steps=min_steps, max_steps=max_steps, step_weights=weights,
                       min_edges=min_edges, max_edges=max_edges)

    def weights(self) -> list[float] | None:
        """Parsed ``step_weights`` of a resolved copy, or None for the distribution the graphs give."""
        text = self.step_weights.strip()
        if not text:
            return None
        try:
            return [float(part) for part in text.split(",")]
        except ValueError:
            raise UsageError(
                f"ProsQAOptions.step_weights must be comma-separated numbers, 'auto' or empty, "
                f"got {self.step_weights!r}"
            ) from None

    def validate(self) -> None:
        """Raise a UsageError (the options are flags of ``data generate``) naming the first inconsistent option
        (checks the resolved values)."""
        for f in ("min_nodes", "max_nodes", "min_steps", "max_steps", "min_edges", "max_edges", "max_tries"):
            value = getattr(self, f)
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"ProsQAOptions.{f} must be an int, got {value!r}")
        for f in ("parent_rate", "depth_weight", "only_a_prob", "only_b_prob", "true_first_prob"):
            value = getattr(self, f)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"ProsQAOptions.{f} must be a finite number, got {value!r}")
        if not isinstance(self.step_weights, str):
            raise UsageError(f"ProsQAOptions.step_weights must be a string, got {self.step_weights!r}")
        for f in ("min_steps", "max_steps", "min_edges", "max_edges"):
            if getattr(self, f) < 0:
                raise UsageError(f"ProsQAOptions.{f} must be >= 0 (0 = auto), got {getattr(self, f)}")
        if self.min_nodes < 5:
            # The person, one concept, the true option, the other person and its leaf.
            raise UsageError(f"ProsQAOptions.min_nodes must be at least 5, got {self.min_nodes}")
        if self.max_nodes < self.min_nodes:
            raise UsageError(
                f"ProsQAOptions.max_nodes ({self.max_nodes}) is below min_nodes ({self.min_nodes})"
            )
        if self.max_nodes - 2 > len(CONCEPTS):
            raise UsageError(
                f"ProsQAOptions.max_nodes is {self.max_nodes}, but there are only {len(CONCEPTS)} "
                f"concept names; use at most {len(CONCEPTS) + 2}"
            )
        r = self.resolved()
        if r.min_steps < 1 or r.max_steps < r.min_steps:
            raise UsageError(
                f"ProsQAOptions needs 1 <= min_steps <= max_steps, got {r.min_steps}..{r.max_steps}"
            )
        if r.max_steps + 3 > self.max_nodes:
            raise UsageError(
                f"ProsQAOptions.max_steps is {r.max_steps}, which needs at least {r.max_steps + 3} "
                f"nodes, but max_nodes is {self.max_nodes}"
            )
        if r.max_edges < r.min_edges:
            raise UsageError(
                f"ProsQAOptions.max_edges ({r.max_edges}) is below min_edges ({r.min_edges})"
            )
        if r.max_edges < r.min_steps + 1:
            raise UsageError(
                f"ProsQAOptions.max_edges ({r.max_edges}) cannot hold a {r.min_steps}-step proof "
                "and the false option's edge"
            )
        weights = r.weights()
        if weights is not None:
            span = r.max_steps - r.min_steps + 1
            if len(weights) != span:
                raise UsageError(
                    f"ProsQAOptions.step_weights has {len(weights)} values, but steps "
                    f"{r.min_steps}..{r.max_steps} need {span} (or 'auto' / empty)"
                )
            if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
                raise UsageError(
                    f"ProsQAOptions.step_weights must be non-negative with a positive sum, "
                    f"got {self.step_weights!r}"
                )
        if not self.parent_rate > 0:
            raise UsageError(f"ProsQAOptions.parent_rate must be positive, got {self.parent_rate}")
        if not self.depth_weight >= 0:
            raise UsageError(f"ProsQAOptions.depth_weight must be >= 0, got {self.depth_weight}")
        if not (0 < self.only_a_prob and 0 < self.only_b_prob and self.only_a_prob + self.only_b_prob <= 1):
            # Without nodes on each person's own side no leaf separates the two.
            raise UsageError(
                "ProsQAOptions.only_a_prob and only_b_prob must be positive with a sum of at most 1, "
                f"got {self.only_a_prob} and {self.only_b_prob}"
            )
        if not 0 <= self.true_first_prob <= 1:
            raise UsageError(f"ProsQAOptions.true_first_prob must be in [0, 1], got {self.true_first_prob}")
        if self.max_tries < 1:
            raise UsageError(f"ProsQAOptions.max_tries must be positive, got {self.max_tries}")


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


def _grow(rng: random.Random, n_nodes: int, opts: ProsQAOptions) -> tuple[Graph, list[int]]:
    """The grown graph and each node's label."""
    parents: list[list[int]] = [[], []]
    labels = [1, 2]
    depth = [0, 0]
    # Candidate parents by label: 0 reached by neither person, 1 by node 0 only, 2 by node 1 only.
    # Label 3 (both) is no pool: its nodes stay childless, as in the official file.
    pools: dict[int, list[int]] = {0: [], 1: [0], 2: [1], 3: []}
    for idx in range(2, n_nodes):
        k = _poisson(rng, opts.parent_rate)
        u = rng.random()
        if u < opts.only_b_prob:
            candidates = pools[2]
        elif u < opts.only_b_prob + opts.only_a_prob:
            candidates = pools[1]
        else:
            candidates = pools[0] + pools[1] + pools[2]
        k = min(k, len(candidates))
        chosen = _weighted_sample(rng, candidates, [depth[c] * opts.depth_weight + 1 for c in candidates], k)
        label = 0
        for p in chosen:
            label |= labels[p]
        parents.append(sorted(chosen))
        labels.append(label)
        depth.append(max((depth[p] for p in chosen), default=-1) + 1)
        pools[label].append(idx)
    return Graph.from_parents(parents), labels


def _try_problem(rng: random.Random, opts: ProsQAOptions, want_steps: int | None) -> Record | None:
    graph, labels = _grow(rng, opts.max_nodes, opts)
    n, children = graph.size, graph.children
    if not children[0] or not children[1]:
        return None
    keep = [i for i in range(n) if graph.parents[i] or children[i]]
    if len(keep) < opts.min_nodes:
        return None
    n_edges = len(graph.edges)
    if not opts.min_edges <= n_edges <= opts.max_edges:
        return None

    leaves = [i for i in keep if not children[i] and graph.parents[i]]
    own = {0: [i for i in leaves if labels[i] == 1], 1: [i for i in leaves if labels[i] == 2]}
    if not own[0] or not own[1]:
        return None
    dist = {0: graph.distances_from(0), 1: graph.distances_from(1)}
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
    r, t, f = new_index[root], new_index[target], new_index[neg_target]
    problem = ProsQAGraph(names, edges, r, t, f)
    facts = [problem.fact(p, c) for p, c in edges]
    rng.shuffle(facts)

    first, second = (t, f) if rng.random() < opts.true_first_prob else (f, t)
    question = problem.question(facts, first, second)
    steps = [problem.fact(new_index[a], new_index[b]) for a, b in zip(path, path[1:])]
    return Record(
        question=question,
        steps=steps,
        answer=problem.answer(t),
        extra={"idx_to_symbol": names, "edges": edges, "root": r, "target": t, "neg_target": f},
    )


def generate(n: int, seed: int = 0, options: ProsQAOptions | None = None) -> list[Record]:
    """Generate ``n`` ProsQA problems; the same (n, seed, options) always gives the same list."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    opts = options if options is not None else ProsQAOptions()
    opts.validate()
    opts = opts.resolved()
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
            raise UsageError(
                f"no graph with {wanted}, {opts.min_nodes}..{opts.max_nodes} nodes and "
                f"{opts.min_edges}..{opts.max_edges} edges in {opts.max_tries} tries; "
                "loosen the step, node or edge limits"
            )
    return records


# --------------------------------------------------------------------------------------------
# Checking


def _get(record: Record | dict[str, Any], key: str) -> Any:
    if isinstance(record, Record):
        value = getattr(record, key) if key in ("question", "steps", "answer") else record.extra.get(key)
    elif isinstance(record, dict):
        value = record.get(key)
    else:
        raise ValueError(f"expected a Record or a dict, got {type(record).__name__}")
    if value is None:
        raise ValueError(f"record has no field '{key}'")
    return value


def check_record(record: Record | dict[str, Any]) -> None:
    """Check a ProsQA record (generated or official) against its own graph fields.

    Raises ValueError naming the first problem: facts vs. edges, option reachability, the proof
    steps (each an edge fact, chained from the person to the true option, as short as possible),
    the answer and the question's final sentence.
    """
    question, steps, answer = (_get(record, k) for k in ("question", "steps", "answer"))
    names, raw_edges = _get(record, "idx_to_symbol"), _get(record, "edges")
    root, target, neg = (_get(record, k) for k in ("root", "target", "neg_target"))
    _check_types(question, steps, answer, names, raw_edges)
    edges = [tuple(e) for e in raw_edges]
    _check_nodes(names, root, target, neg)
    _check_edges(edges, len(names))
    graph = ProsQAGraph(names, edges, root, target, neg)
    _check_root_is_person(graph)
    edge_facts = {graph.fact(p, c): (p, c) for p, c in graph.edges}
    body = _check_ask(question, graph)
    _check_facts(body, edge_facts)
    _check_acyclic(graph)
    dist = graph.distances_from(root)
    _check_options(graph, dist)
    _check_steps(steps, graph, edge_facts, dist)
    _check_answer(answer, graph)


def _check_types(question: Any, steps: Any, answer: Any, names: Any, edges: Any) -> None:
    if not isinstance(question, str) or not isinstance(answer, str):
        raise ValueError("question and answer must be strings")
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise ValueError("steps must be a list of strings")
    if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
        raise ValueError("idx_to_symbol must be a list of names")
    if not isinstance(edges, list) or not all(isinstance(e, (list, tuple)) for e in edges):
        raise ValueError("edges must be a list of [parent, child] pairs")


def _check_nodes(names: list[str], root: Any, target: Any, neg: Any) -> None:
    n = len(names)
    if len(set(names)) != n:
        raise ValueError("idx_to_symbol has repeated names")
    for key, idx in (("root", root), ("target", target), ("neg_target", neg)):
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < n:
            raise ValueError(f"{key} {idx!r} is not a node index in 0..{n - 1}")


def _check_edges(edges: list[tuple], n: int) -> None:
    for e in edges:
        if len(e) != 2 or not all(isinstance(x, int) and 0 <= x < n for x in e):
            raise ValueError(f"edge {list(e)} is not a pair of node indices in 0..{n - 1}")
    if len(set(edges)) != len(edges):
        raise ValueError("edges has duplicates")


def _check_root_is_person(graph: ProsQAGraph) -> None:
    if not graph.is_person(graph.root):
        raise ValueError(f"root {graph.names[graph.root]} has a parent; the asked node must be a person")


def _check_ask(question: str, graph: ProsQAGraph) -> str:
    """Check the final 'Is X a A or B?' sentence against the root and the options; return the facts before it."""
    names, target, neg = graph.names, graph.target, graph.neg_target
    ask_at = question.rfind(" Is ")
    if ask_at < 0:
        raise ValueError("question has no final 'Is X a A or B?' sentence")
    body, ask = question[:ask_at], question[ask_at + 1 :]
    m = ASK_RE.fullmatch(ask)
    if m is None:
        raise ValueError(f"question ends with {ask!r}, not 'Is X a A or B?'")
    if m.group(1) != names[graph.root]:
        raise ValueError(f"question asks about {m.group(1)}, but root is {names[graph.root]}")
    if {m.group(2), m.group(3)} != {names[target], names[neg]} or names[target] == names[neg]:
        raise ValueError(
            f"question offers {m.group(2)} / {m.group(3)}, but the options are "
            f"{names[target]} (target) and {names[neg]} (neg_target)"
        )
    return body


def _check_facts(body: str, edge_facts: dict[str, tuple[int, int]]) -> None:
    """The question's facts state every edge once and nothing else."""
    fact_texts = [f"Every {a} is a {c}." if a else f"{b} is a {c}." for a, b, c in FACT_RE.findall(body)]
    if " ".join(fact_texts) != body:
        raise ValueError("question body is not a sequence of 'Every X is a Y.' / 'P is a Y.' facts")
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


def _check_acyclic(graph: ProsQAGraph) -> None:
    # Cycles would make "shortest path" and the leaf options ill-defined.
    if graph.layers() is None:
        raise ValueError("edges contain a cycle")


def _check_options(graph: ProsQAGraph, dist: dict[int, int]) -> None:
    """Exactly the target is reachable from the root, and both options are leaves."""
    names, root, target, neg = graph.names, graph.root, graph.target, graph.neg_target
    reach_t, reach_f = target in dist, neg in dist
    if reach_t and reach_f:
        raise ValueError(f"both options {names[target]} and {names[neg]} are reachable from {names[root]}")
    if not reach_t:
        raise ValueError(f"target {names[target]} is not reachable from {names[root]}")
    for key, idx in (("target", target), ("neg_target", neg)):
        if graph.children[idx]:
            raise ValueError(f"{key} {names[idx]} is not a leaf")


def _check_steps(steps: list[str], graph: ProsQAGraph, edge_facts: dict[str, tuple[int, int]],
                 dist: dict[int, int]) -> None:
    """The steps are edge facts chained from the root to the target along a shortest path."""
    names, target = graph.names, graph.target
    if not steps:
        raise ValueError("steps is empty")
    at = graph.root
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


def _check_answer(answer: str, graph: ProsQAGraph) -> None:
    expected = graph.answer(graph.target)
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
        m = ASK_RE.search(_get(rec, "question"))
        first.append(m is not None and m.group(2) == names[_get(rec, "target")])
    return {
        "n": len(nodes),
        "nodes": _summary(nodes),
        "edges": _summary(edges),
        "steps": _summary(steps),
        "persons": _summary(persons),
        "true_first": mean(first) if first else float("nan"),
    }
