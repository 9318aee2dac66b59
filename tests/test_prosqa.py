"""ProsQA generator: official statistics, determinism, small graphs, and the record checker."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import typing
from pathlib import Path

import pytest

from latentcot.data.prosqa import (
    CONCEPTS,
    PERSONS,
    ProsQAOptions,
    check_record,
    generate,
    graph_stats,
)
from latentcot.data.records import Record

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "prosqa_valid.json"
GRAPH_FIELDS = ("idx_to_symbol", "edges", "root", "target", "neg_target")


@pytest.fixture(scope="module")
def default_set() -> list[Record]:
    return generate(1000, seed=0)


@pytest.fixture(scope="module")
def official() -> list[dict]:
    if not OFFICIAL.exists():
        pytest.skip(f"official ProsQA file not found at {OFFICIAL} (the repo is expected beside shared/)")
    return json.loads(OFFICIAL.read_text())


def _dicts(records: list[Record]) -> list[dict]:
    return [r.to_dict() for r in records]


def _reachable(record: Record, source: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p, c in record.extra["edges"]:
        children.setdefault(p, []).append(c)
    seen, todo = {source}, [source]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return seen


# ---------------------------------------------------------------- statistics of the default set


def test_default_set_matches_official_statistics(default_set):
    stats = graph_stats(default_set)
    assert stats["n"] == 1000
    nodes, edges, steps = stats["nodes"], stats["edges"], stats["steps"]
    # Official test + valid (800 problems): nodes 14..28 mean 22.8, edges 16..54 mean 36.0.
    assert 14 <= nodes["min"] and nodes["max"] <= 28
    assert abs(nodes["mean"] - 22.8) <= 1.0
    assert 16 <= edges["min"] and edges["max"] <= 54
    assert abs(edges["mean"] - 36.0) <= 3.0
    assert set(steps["hist"]) == {3, 4, 5, 6}
    for count, share in {3: 0.41, 4: 0.44, 5: 0.13, 6: 0.02}.items():
        assert abs(steps["hist"][count] / 1000 - share) <= 0.05, (count, steps["hist"])
    assert abs(stats["true_first"] - 0.5) <= 0.05


def test_default_set_passes_check_record(default_set):
    for i, record in enumerate(default_set):
        try:
            check_record(record)
        except ValueError as err:  # pragma: no cover - the message is the point
            pytest.fail(f"generated record {i}: {err}")


def test_default_set_has_official_fields_and_shape(default_set):
    for record in default_set:
        assert set(record.to_dict()) == {"question", "steps", "answer", *GRAPH_FIELDS}
        names, edges = record.extra["idx_to_symbol"], record.extra["edges"]
        has_parent = {c for _, c in edges}
        people = [i for i in range(len(names)) if i not in has_parent]
        assert all(names[i] in PERSONS for i in people)
        assert all(names[i] in CONCEPTS for i in has_parent)
        # As in the official file: indices in generation order, the asked person is node 0 or 1,
        # and the false option is what the other of the two reaches.
        assert all(p < c for p, c in edges)
        assert record.extra["root"] in (0, 1)
        assert record.extra["neg_target"] in _reachable(record, 1 - record.extra["root"])
        assert record.extra["target"] not in _reachable(record, 1 - record.extra["root"])
        assert {i for e in edges for i in e} == set(range(len(names))), "a node with no fact"


def test_default_set_structure_like_official(default_set):
    # Official valid set: 2.51 people per graph (60% with only the two main ones), node 1 asked
    # about in 65% of problems, and nodes both main people reach (6%) almost never have a child.
    people = graph_stats(default_set)["persons"]
    assert abs(people["mean"] - 2.51) <= 0.25
    assert abs(people["hist"][2] / 1000 - 0.60) <= 0.08
    assert abs(sum(r.extra["root"] for r in default_set) / 1000 - 0.65) <= 0.07
    shared_nodes = shared_parents = total_nodes = 0
    for record in default_set:
        both = _reachable(record, 0) & _reachable(record, 1)
        shared_nodes += len(both)
        total_nodes += len(record.extra["idx_to_symbol"])
        shared_parents += sum(1 for p, _ in record.extra["edges"] if p in both)
    assert 0.03 <= shared_nodes / total_nodes <= 0.10
    assert shared_parents == 0


# ---------------------------------------------------------------- determinism and options


def test_same_seed_same_output_regardless_of_global_rng():
    random.seed(1)
    first = _dicts(generate(60, seed=7))
    random.seed(2)
    random.random()
    second = _dicts(generate(60, seed=7))
    assert first == second


def test_different_seed_different_output():
    assert _dicts(generate(20, seed=0)) != _dicts(generate(20, seed=1))


def test_prefix_of_longer_run_is_identical():
    # One RNG stream per call: asking for more problems must not change the first ones.
    assert _dicts(generate(30, seed=5)) == _dicts(generate(60, seed=5))[:30]


@pytest.mark.parametrize("lo,hi", [(8, 12), (10, 14)])
def test_small_graphs_from_node_limits_alone(lo, hi):
    records = generate(300, seed=3, options=ProsQAOptions(min_nodes=lo, max_nodes=hi))
    stats = graph_stats(records)
    assert lo <= stats["nodes"]["min"] and stats["nodes"]["max"] <= hi
    assert set(stats["steps"]["hist"]) <= {2, 3, 4}
    assert len(stats["steps"]["hist"]) >= 2, "small graphs should still vary the proof length"
    for record in records:
        check_record(record)


def test_explicit_step_weights_are_honoured():
    opts = ProsQAOptions(min_nodes=8, max_nodes=12, min_steps=2, max_steps=3, step_weights="0,1")
    records = generate(50, seed=0, options=opts)
    assert {len(r.steps) for r in records} == {3}


def test_options_fields_are_cli_friendly():
    hints = typing.get_type_hints(ProsQAOptions)
    for f in dataclasses.fields(ProsQAOptions):
        assert hints[f.name] in (int, float, str, bool), f.name
        assert f.metadata.get("help"), f"{f.name} has no help text"


def test_default_options_resolve_to_official_settings():
    r = ProsQAOptions().resolved()
    assert (r.min_steps, r.max_steps, r.step_weights) == (3, 6, "41,44,13,2")
    assert (r.min_edges, r.max_edges) == (16, 54)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"min_nodes": 20, "max_nodes": 15}, "below min_nodes"),
        ({"max_nodes": 60}, "concept names"),
        ({"min_nodes": 3}, "at least 5"),
        ({"max_steps": 7, "min_nodes": 8, "max_nodes": 9}, "needs at least 10 nodes"),
        ({"min_steps": 3, "max_steps": 5, "step_weights": "1,1"}, "has 2 values"),
        ({"step_weights": "a,b,c,d"}, "comma-separated numbers"),
        ({"step_weights": "0,0,0,0"}, "positive sum"),
        ({"only_a_prob": 0.6, "only_b_prob": 0.6}, "sum of at most 1"),
        ({"min_edges": 30, "max_edges": 20}, "below min_edges"),
        ({"true_first_prob": 1.5}, "true_first_prob"),
        ({"max_nodes": 12.0}, "must be an int"),
    ],
)
def test_bad_options_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(1, options=ProsQAOptions(**kwargs))


def test_unreachable_request_fails_with_a_clear_error():
    opts = ProsQAOptions(min_nodes=8, max_nodes=9, min_steps=6, max_steps=6, max_tries=200)
    with pytest.raises(ValueError, match="in 200 tries"):
        generate(1, options=opts)


def test_negative_n_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        generate(-1)


# ---------------------------------------------------------------- check_record


@pytest.fixture()
def record() -> dict:
    return generate(1, seed=11)[0].to_dict()


def _fact(rec: dict, parent: int, child: int) -> str:
    names = rec["idx_to_symbol"]
    is_person = all(c != parent for _, c in rec["edges"])
    return f"{names[parent]} is a {names[child]}." if is_person else f"Every {names[parent]} is a {names[child]}."


def _add_edge(rec: dict, parent: int, child: int) -> dict:
    rec = copy.deepcopy(rec)
    rec["edges"].append([parent, child])
    body, ask = rec["question"].rsplit(" Is ", 1)
    rec["question"] = f"{body} {_fact(rec, parent, child)} Is {ask}"
    return rec


def test_check_record_accepts_generated_record_and_dict(record):
    check_record(record)
    check_record(Record.from_dict(record))


def test_check_record_rejects_step_that_is_not_an_edge(record):
    bad = copy.deepcopy(record)
    names = bad["idx_to_symbol"]
    bad["steps"][0] = f"{names[bad['root']]} is a {names[bad['neg_target']]}."
    with pytest.raises(ValueError, match="is not an edge fact"):
        check_record(bad)


def test_check_record_rejects_both_options_reachable(record):
    # Hang the false option below the true option's parent, stated as a fact like any other.
    parent = next(p for p, c in record["edges"] if c == record["target"])
    bad = _add_edge(record, parent, record["neg_target"])
    with pytest.raises(ValueError, match="both options"):
        check_record(bad)


def test_check_record_rejects_a_path_that_is_not_shortest(record):
    assert len(record["steps"]) >= 2
    bad = _add_edge(record, record["root"], record["target"])
    with pytest.raises(ValueError, match="shortest path has 1"):
        check_record(bad)


def test_check_record_rejects_broken_chain(record):
    bad = copy.deepcopy(record)
    bad["steps"] = bad["steps"][1:]
    with pytest.raises(ValueError, match="does not continue from"):
        check_record(bad)


def test_check_record_rejects_edge_missing_from_question(record):
    bad = copy.deepcopy(record)
    dropped = bad["edges"][-1]
    bad["question"] = bad["question"].replace(_fact(bad, *dropped) + " ", "", 1)
    with pytest.raises(ValueError, match="not in the question"):
        check_record(bad)


def test_check_record_rejects_fact_that_is_not_an_edge(record):
    bad = copy.deepcopy(record)
    bad["edges"].pop()
    with pytest.raises(ValueError, match="is not an edge"):
        check_record(bad)


def test_check_record_rejects_wrong_answer_and_wrong_options(record):
    names = record["idx_to_symbol"]
    bad = copy.deepcopy(record)
    bad["answer"] = f"{names[record['root']]} is a {names[record['neg_target']]}."
    with pytest.raises(ValueError, match="answer"):
        check_record(bad)
    bad = copy.deepcopy(record)
    bad["target"], bad["neg_target"] = record["neg_target"], record["target"]
    with pytest.raises(ValueError, match="not reachable"):
        check_record(bad)
    bad = copy.deepcopy(record)
    other = next(i for i in range(len(names)) if i not in (record["target"], record["neg_target"]))
    bad["question"] = bad["question"].replace(f" or {names[record['neg_target']]}?", f" or {names[other]}?")
    bad["question"] = bad["question"].replace(f"a {names[record['neg_target']]} or", f"a {names[other]} or")
    with pytest.raises(ValueError, match="question offers"):
        check_record(bad)


# ---------------------------------------------------------------- the official file


def test_check_record_accepts_every_official_record(official):
    assert len(official) == 300
    for i, rec in enumerate(official):
        try:
            check_record(rec)
        except ValueError as err:  # pragma: no cover
            pytest.fail(f"official record {i}: {err}")


def test_official_vocabulary_is_the_built_in_one(official):
    people, concepts = set(), set()
    for rec in official:
        has_parent = {c for _, c in rec["edges"]}
        for i, name in enumerate(rec["idx_to_symbol"]):
            (concepts if i in has_parent else people).add(name)
    assert people == set(PERSONS)
    assert concepts == set(CONCEPTS)
