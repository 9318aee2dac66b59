"""Per-thought targets (``method.thought_targets``): what each continuous thought should hold, read off a
record through its encoding.

``reachable`` (graph encodings; Zhu et al. 2025's Coconut-BFS, the breadth-first frontier they find in
Coconut's thoughts): thought k's target is every node within k edges of the root, the root included, as a
set the LM head should spread its mass over uniformly. The answer is the option that enters the set.
``chain`` (ProntoQA's rules encoding): thought k's target is the one concept reached after k rule hops,
the last word of written step k.

These are a training signal the paper's Coconut does not have: its thoughts are trained only through the
answer tokens after them.
"""

from __future__ import annotations

from ..errors import ConfigError
from .graph import reachable_sets
from .records import Record

THOUGHT_TARGET_KINDS = ("none", "reachable", "chain")
# which data.encoding each kind reads its targets from
TARGET_ENCODINGS = {"reachable": ("graph", "graph_edges"), "chain": ("rules",)}


def thought_target_texts(encoded: Record, kind: str, hops: int) -> list[list[str]]:
    """Hop k's target as the texts of its tokens (each one token, written as the encoding writes it), for
    k = 1 .. ``hops``; a hop past the record's chain gets an empty list (no target)."""
    if kind == "reachable":
        from .encodings import parse_graph_question

        edges, _, root = parse_graph_question(encoded.question)
        return [[f" {node}" for node in nodes] for nodes in reachable_sets(edges, root, hops)]
    if kind == "chain":
        # a rules-encoded step is " subject predicate" (a hop) or " property" (the conclusion): the
        # concept the hop reaches is its last word
        concepts = [[" " + step.split()[-1]] for step in encoded.steps if len(step.split()) == 2]
        return (concepts + [[] for _ in range(hops)])[:hops]
    raise ConfigError(f"config key 'method.thought_targets': unknown kind {kind!r} "
                      f"(choose from {', '.join(THOUGHT_TARGET_KINDS)})", "method.thought_targets")


def check_target_encoding(kind: str, encoding: str) -> None:
    """One clear error when a target kind cannot be read from the run's encoding."""
    if kind != "none" and encoding not in TARGET_ENCODINGS[kind]:
        raise ConfigError(f"config key 'method.thought_targets': {kind} reads its targets from "
                          f"data.encoding={' or '.join(TARGET_ENCODINGS[kind])}, got data.encoding={encoding}",
                          "method.thought_targets")
