"""The shared graph model (latentcot.data.graph) on small graphs worked out by hand."""

from __future__ import annotations

import pytest

from latentcot.data.graph import ASK_RE, FACT_RE, Graph, ProsQAGraph, frontier_nodes, reachable_sets
from latentcot.data.records import Record

# 0 -> 1 -> 3 -> 4, 0 -> 2 -> 3, 5 -> 2; node 6 has no edge at all.
#
#     0     5
#    / \   /
#   1   2-'
#    \ /
#     3 -> 4        6
DAG = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (5, 2)]


@pytest.fixture()
def dag() -> Graph:
    return Graph(DAG, size=7)


def test_children_and_parents_follow_the_edges_order(dag):
    assert dag.size == 7
    assert dag.children == [[1, 2], [3], [3], [4], [], [2], []]
    assert dag.parents == [[], [0], [0, 5], [1, 2], [3], [], []]
    assert dag.has_edge(5, 2) and not dag.has_edge(2, 5)


def test_size_grows_to_hold_every_edge_and_from_parents_inverts_parents():
    assert Graph([(0, 5)]).size == 6
    assert Graph([], size=3).children == [[], [], []]
    graph = Graph.from_parents([[], [0], [0], [2, 1]])
    assert graph.edges == [(0, 1), (0, 2), (2, 3), (1, 3)]
    assert graph.children == [[1, 2], [3], [3], []]  # node order, whatever order the parents came in
    assert graph.parents[3] == [2, 1]


def test_distances_from_a_root_skip_what_it_cannot_reach(dag):
    assert dag.distances_from(0) == {0: 0, 1: 1, 2: 1, 3: 2, 4: 3}
    assert dag.distances_from(5) == {5: 0, 2: 1, 3: 2, 4: 3}
    assert dag.distances_from(6) == {6: 0}


def test_reachable_sets_grow_a_hop_at_a_time_and_keep_the_root(dag):
    assert dag.reachable_sets(0, 4) == [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert dag.reachable_sets(5, 2) == [[2, 5], [2, 3, 5]]
    assert dag.reachable_sets(4, 2) == [[4], [4]]
    assert dag.reachable_sets(0, 0) == []


def test_ancestors_are_every_node_with_a_path_to_it(dag):
    assert dag.ancestors(3) == {0, 1, 2, 3, 5}
    assert dag.ancestors(6) == {6}


def test_frontier_keeps_only_nodes_that_lead_on_to_the_target(dag):
    assert [dag.frontier(0, 4, d) for d in range(5)] == [[0], [1, 2], [3], [4], []]
    # only 1 leads to target 1; nothing lies two steps out on the way to it
    assert [dag.frontier(0, 1, d) for d in range(3)] == [[0], [1], []]
    # 5 reaches 3 but not 1
    assert dag.frontier(5, 1, 1) == []


def test_frontier_steps_along_paths_not_distances():
    # 2 is one edge from 0 and also two (through 1): it is in the frontier at both depths
    graph = Graph([(0, 1), (1, 2), (0, 2), (2, 3)])
    assert graph.frontier(0, 3, 1) == [1, 2]
    assert graph.frontier(0, 3, 2) == [2, 3]
    assert graph.distances_from(0)[2] == 1


def test_heights_are_the_fewest_edges_down_to_a_leaf(dag):
    assert dag.heights() == [3, 2, 2, 1, 0, 3, 0]


def test_layers_are_topological_rounds_in_node_order(dag):
    assert dag.layers() == [[0, 5, 6], [1, 2], [3], [4]]


def test_a_cycle_has_no_layers_but_searches_still_end():
    # 0 -> 1 -> 2 -> 3, with 2 -> 1 closing a cycle
    graph = Graph([(0, 1), (1, 2), (2, 1), (2, 3)])
    assert graph.layers() is None
    assert graph.distances_from(0) == {0: 0, 1: 1, 2: 2, 3: 3}
    assert graph.reachable_sets(0, 4) == [[0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3]]
    assert graph.ancestors(1) == {0, 1, 2}
    # a walk may go round the cycle: 0 1 2 1 2
    assert [graph.frontier(0, 3, d) for d in range(5)] == [[0], [1], [2], [1, 3], [2]]
    assert graph.heights() == [3, 2, 1, 0]
    assert Graph([(0, 0)]).layers() is None  # a self-loop is a cycle too


def test_heights_refuse_a_cycle_that_reaches_no_leaf():
    with pytest.raises(ValueError, match="node 0 reaches no leaf"):
        Graph([(0, 1), (1, 0)], size=3).heights()


def test_edge_list_helpers_hold_roots_and_targets_outside_the_edges():
    assert reachable_sets(DAG, 0, 2) == [[0, 1, 2], [0, 1, 2, 3]]
    assert reachable_sets([(0, 1)], 4, 2) == [[4], [4]]
    assert frontier_nodes([(0, 1), (0, 2), (1, 3), (2, 4)], 0, 3, 1) == [1]
    assert frontier_nodes([(0, 1)], 7, 1, 0) == [7]
    assert frontier_nodes([(0, 1)], 0, 9, 1) == []


# Alex -> wumpus -> yumpus; Bob -> zumpus; Alex is asked about yumpus (reachable) or zumpus (not).
NAMES = ["Alex", "Bob", "wumpus", "yumpus", "zumpus"]
EDGES = [[0, 2], [2, 3], [1, 4]]


def test_prosqa_sentences_state_people_and_concepts_apart():
    graph = ProsQAGraph(NAMES, EDGES, root=0, target=3, neg_target=4)
    assert graph.is_person(0) and graph.is_person(1) and not graph.is_person(2)
    facts = [graph.fact(p, c) for p, c in graph.edges]
    assert facts == ["Alex is a wumpus.", "Every wumpus is a yumpus.", "Bob is a zumpus."]
    question = graph.question(facts, 4, 3)
    assert question == "Alex is a wumpus. Every wumpus is a yumpus. Bob is a zumpus. Is Alex a zumpus or yumpus?"
    assert graph.answer(3) == "Alex is a yumpus."
    assert graph.question([], 3, 4) == "Is Alex a yumpus or zumpus?"


def test_the_sentence_patterns_read_back_what_the_graph_writes():
    graph = ProsQAGraph(NAMES, EDGES, root=0)
    read = []
    for p, c in graph.edges:
        m = FACT_RE.fullmatch(graph.fact(p, c))
        read.append((NAMES.index(m.group(1) or m.group(2)), NAMES.index(m.group(3))))
    assert read == graph.edges
    assert ASK_RE.fullmatch("Is Alex a yumpus or zumpus?").groups() == ("Alex", "yumpus", "zumpus")


def test_of_reads_a_records_graph_fields():
    record = Record("q", [], "a", extra={"idx_to_symbol": NAMES, "edges": EDGES, "root": 1})
    graph = ProsQAGraph.of(record)
    assert graph.names == tuple(NAMES) and graph.root == 1
    assert graph.target is None and graph.neg_target is None
    assert graph.distances_from(graph.root) == {1: 0, 4: 1}
