import dataclasses
import re

import pytest

from latentcot.data.prontoqa import ProntoQAOptions, check_record, generate
from latentcot.data.records import Record


@pytest.fixture(scope="module")
def records():
    return generate(1000, seed=0)


def _context_sentences(record):
    context = record.question[: record.question.index("True or false:")]
    return re.findall(r"[^.]+\.", context)


def _rules(record):
    rule = re.compile(r"\s*(Every|Each) |\s*[A-Z][a-z]+ are ")
    return [s.strip() for s in _context_sentences(record) if rule.match(s)]


def test_all_generated_records_check(records):
    assert len(records) == 1000
    for record in records:
        check_record(record)


def test_answers_balanced(records):
    share = sum(r.answer == "True" for r in records) / len(records)
    assert abs(share - 0.5) <= 0.05
    assert {r.answer for r in records} == {"True", "False"}


def test_query_polarity_not_tied_to_answer(records):
    # If "not" in the query predicted the answer, the task would be solvable without reasoning.
    negated = [r for r in records if " is not " in r.question.split("True or false:")[1]]
    share = sum(r.answer == "True" for r in negated) / len(negated)
    assert 0.4 < share < 0.6


def test_steps_count_equals_hops(records):
    assert all(len(r.steps) == 5 for r in records)
    for hops in (1, 3, 7):
        for r in generate(50, seed=hops, options=ProntoQAOptions(hops=hops)):
            assert len(r.steps) == hops
            check_record(r)


def test_steps_are_fact_then_rule(records):
    r = records[0]
    person = re.search(r"True or false: ([A-Z][a-z]+)", r.question).group(1)
    for step in r.steps:
        sentences = re.findall(r"[^.]+\.", step)
        assert len(sentences) == 2
        assert sentences[0].startswith(f"{person} is a")
        assert sentences[1].strip() in r.question


def test_question_shape(records):
    for r in records[:100]:
        assert re.search(r" True or false: [A-Z][a-z]+ is (not )?[a-z]+\.$", r.question)
        assert r.extra == {}


def test_distractors_present(records):
    for r in records:
        rules = _rules(r)
        assert len(rules) > 5  # the proof needs 5 rules
    # The queried adjective also appears with the opposite polarity off the chain.
    r = records[0]
    adjective = re.search(r"is (?:not )?([a-z]+)\.$", r.question).group(1)
    mentions = [s for s in _rules(r) if s.endswith(f" {adjective}.")]
    assert len(mentions) == 2
    assert sum(" not " in s for s in mentions) == 1


def test_rule_wordings_vary(records):
    text = " ".join(r.question for r in records[:50])
    assert "Every " in text and "Each " in text and re.search(r"[A-Z][a-z]+uses are ", text)


def test_deterministic():
    assert generate(100, seed=7) == generate(100, seed=7)
    assert generate(100, seed=7) != generate(100, seed=8)
    opts = ProntoQAOptions(hops=3, distractor_rules=2, names="Ann,Bob")
    assert generate(20, seed=1, options=opts) == generate(20, seed=1, options=opts)


def test_option_variants_check():
    variants = [
        ProntoQAOptions(distractor_rules=0, distractor_properties=0),
        ProntoQAOptions(distractor_rules=1, sibling_distractor=False),
        ProntoQAOptions(fact_last=True),
        ProntoQAOptions(hops=3, distractor_rules=4, names="Ann", concepts="dax,blick,wug,fep,toma,zav,kiki"),
        ProntoQAOptions(hops=10, distractor_rules=12, distractor_properties=14),
    ]
    for opts in variants:
        records = generate(41, seed=3, options=opts)
        assert len(records) == 41
        for r in records:
            check_record(r)
    fact_last = generate(5, options=ProntoQAOptions(fact_last=True))
    for r in fact_last:
        assert re.search(r"[A-Z][a-z]+ is an? [a-z]+\. True or false:", r.question)


def test_check_rejects_flipped_answer(records):
    for r in records[:50]:
        flipped = dataclasses.replace(r, answer="False" if r.answer == "True" else "True")
        with pytest.raises(ValueError, match="answer"):
            check_record(flipped)


def test_check_rejects_broken_chain(records):
    r = records[0]
    with pytest.raises(ValueError):
        check_record(dataclasses.replace(r, steps=r.steps[:2] + r.steps[3:]))  # a hop skipped
    with pytest.raises(ValueError):
        check_record(dataclasses.replace(r, steps=r.steps[:-1]))  # never reaches the property
    with pytest.raises(ValueError):
        check_record(dataclasses.replace(r, steps=[r.steps[1], r.steps[0], *r.steps[2:]]))
    invented = r.steps[-1].split(". ")[0] + ". Every zzz is a yyy."
    with pytest.raises(ValueError):
        check_record(dataclasses.replace(r, steps=[*r.steps[:-1], invented]))


def test_check_rejects_undecided_or_contradictory():
    base = "Every wumpus is a yumpus. Max is a wumpus. "
    with pytest.raises(ValueError, match="do not decide"):
        steps = ["Max is a wumpus. Every wumpus is a yumpus."]
        check_record(Record(base + "True or false: Max is bright.", steps, "True"))
    contradictory = base + "Wumpuses are bright. Yumpuses are not bright. True or false: Max is bright."
    with pytest.raises(ValueError, match="contradict"):
        check_record(Record(contradictory, ["Max is a wumpus. Wumpuses are bright."], "True"))
    ok = base + "Yumpuses are not bright. True or false: Max is bright."
    steps = ["Max is a wumpus. Every wumpus is a yumpus.", "Max is a yumpus. Yumpuses are not bright."]
    check_record(Record(ok, steps, "False"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hops": 0},
        {"distractor_rules": -1},
        {"distractor_properties": 15},
        {"names": " , "},
        {"names": "max"},
        {"concepts": "wumpus,wumpus,yumpus"},
        {"concepts": "Wumpus,yumpus"},
        {"concepts": "bright,yumpus"},
        {"hops": 40},
        {"hops": 2.5},
    ],
)
def test_invalid_options(kwargs):
    with pytest.raises(ValueError):
        generate(1, options=ProntoQAOptions(**kwargs))


def test_invalid_n():
    with pytest.raises(ValueError):
        generate(-1)
    assert generate(0) == []
