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


def test_steps_are_one_per_hop_and_the_conclusion(records):
    assert all(len(r.steps) == 6 for r in records)
    for hops in (1, 3, 6):
        for r in generate(50, seed=hops, options=ProntoQAOptions(hops=hops)):
            assert len(r.steps) == hops + 1
            check_record(r)


def test_steps_are_fact_then_rule_then_the_conclusion(records):
    r = records[0]
    person, negated, adjective = re.search(r"True or false: ([A-Z][a-z]+) is (not )?([a-z]+)", r.question).groups()
    for step in r.steps[:-1]:
        sentences = re.findall(r"[^.]+\.", step)
        assert len(sentences) == 2
        assert sentences[0].startswith(f"{person} is a")
        assert sentences[1].strip() in r.question
    truth = (negated is None) == (r.answer == "True")  # the conclusion is the query when True
    assert r.steps[-1] == f"{person} is {'' if truth else 'not '}{adjective}."


def _official_statistics(records):
    """The figures issue 12 measured on 800 problems of the official generator (5 hops)."""
    per = []
    for r in records:
        sentences = [x for x in re.split(r"(?<=[.:])\s+", r.question) if x]
        about_person = re.findall(r"(?:^|[.:] )([A-Z][a-z]+) is (?:a|an|not) ", r.question)
        per.append((len(sentences), len(about_person), len(r.steps)))
    n = len(per)
    return tuple(sum(x[i] for x in per) / n for i in range(3))


def test_statistics_match_the_official_generator(records):
    # official (issue 12, measured on its 800 problems): 27 sentences a question, about 2.5 sentences
    # "<Name> is (a|an|not) ...", 6 steps. Ours before matching it: 21, 1.5, 5.
    sentences, about_person, steps = _official_statistics(records)
    assert sentences == 27  # 23 rules, 2 facts, the query (2 when split after ':')
    assert abs(about_person - 2.5) < 0.05  # two facts, and the query when it says "not"
    assert steps == 6
    rules = [rule for r in records for rule in _rules(r)]
    plural = sum(" are " in rule for rule in rules) / len(rules)
    every = sum(rule.startswith("Every ") for rule in rules) / len(rules)
    assert abs(plural - 0.5) < 0.02 and abs(every - 0.25) < 0.02


def test_question_shape(records):
    for r in records[:100]:
        assert re.search(r" True or false: [A-Z][a-z]+ is (not )?[a-z]+\.$", r.question)
        assert r.extra == {}


def test_distractors_present(records):
    for r in records:
        rules = _rules(r)
        assert len(rules) == 23  # 11 subtype rules, 11 property rules, the opposite-polarity distractor
        # the true start and a distractor fact, both after the rules
        facts = re.findall(r"[A-Z][a-z]+ is an? [a-z]+\.", r.question.split("True or false:")[0])
        assert len(facts) == 2 and r.question.split("True or false:")[0].rstrip().endswith(facts[1])
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
    opts = ProntoQAOptions(hops=3, names="Ann,Bob")
    assert generate(20, seed=1, options=opts) == generate(20, seed=1, options=opts)


def test_option_variants_check():
    variants = [
        ProntoQAOptions(hops=1),
        ProntoQAOptions(hops=3, names="Ann", concepts="dax,blick,wug,fep,toma,zav,kiki,lupe,mip,nork"),
        ProntoQAOptions(hops=6),
    ]
    for opts in variants:
        records = generate(41, seed=3, options=opts)
        assert len(records) == 41
        for r in records:
            check_record(r)


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
        check_record(dataclasses.replace(r, steps=r.steps[:-1]))  # no conclusion
    with pytest.raises(ValueError):
        check_record(dataclasses.replace(r, steps=r.steps[:-2] + r.steps[-1:]))  # never reaches the property
    with pytest.raises(ValueError):
        check_record(dataclasses.replace(r, steps=[r.steps[1], r.steps[0], *r.steps[2:]]))
    invented = r.steps[-2].split(". ")[0] + ". Every zzz is a yyy."
    with pytest.raises(ValueError):
        check_record(dataclasses.replace(r, steps=[*r.steps[:-2], invented, r.steps[-1]]))


def test_check_rejects_undecided_or_contradictory():
    base = "Every wumpus is a yumpus. Max is a wumpus. "
    with pytest.raises(ValueError, match="do not decide"):
        steps = ["Max is a wumpus. Every wumpus is a yumpus.", "Max is bright."]
        check_record(Record(base + "True or false: Max is bright.", steps, "True"))
    contradictory = base + "Wumpuses are bright. Yumpuses are not bright. True or false: Max is bright."
    with pytest.raises(ValueError, match="contradict"):
        check_record(Record(contradictory, ["Max is a wumpus. Wumpuses are bright.", "Max is bright."], "True"))
    ok = base + "Yumpuses are not bright. True or false: Max is bright."
    steps = ["Max is a wumpus. Every wumpus is a yumpus.", "Max is a yumpus. Yumpuses are not bright.",
             "Max is not bright."]
    check_record(Record(ok, steps, "False"))
    with pytest.raises(ValueError, match="conclusion"):
        check_record(Record(ok, [*steps[:-1], "Max is bright."], "False"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hops": 0},
        {"hops": 7},  # needs 15 adjective families; there are 13
        {"names": " , "},
        {"names": "max"},
        {"concepts": "wumpus,wumpus,yumpus"},
        {"concepts": "Wumpus,yumpus"},
        {"concepts": "bright,yumpus"},
        {"hops": 40},
        {"hops": 2.5},
        {"trap_share": 1.5},
        {"trap_share": 0.5, "hops": 6},  # all 13 adjective families are taken: none to spare for d
    ],
)
def test_invalid_options(kwargs):
    with pytest.raises(ValueError):
        generate(1, options=ProntoQAOptions(**kwargs))


def test_invalid_n():
    with pytest.raises(ValueError):
        generate(-1)
    assert generate(0) == []


def test_each_step_is_decided_by_a_two_hop_lookup(records):
    """What a forward-writing model must compute (docs/prontoqa_full_cpu.md): from the current concept, the next
    concept is the one 'is a' target that itself has 'is a' rules (the others are dead ends), or the query's
    adjective once it is in reach; the first step's fact is chosen the same way. Checked on every problem
    through the compact form, so a generator change that breaks or trivialises this shows here."""
    from latentcot.data.encodings import RulesEncoding

    for record in records:
        encoded = RulesEncoding().encode(record)
        parts = [p.split() for p in encoded.question.split("|")]
        rules = [p for p in parts if p[0] not in ("R", "Q")]
        facts = [p[1] for p in parts if p[0] == "R"]
        query = parts[-1][1].removeprefix("not")  # 'Q [not]adjective'; a rule may carry either polarity
        targets: dict[str, list[str]] = {}
        for rule in rules:
            targets.setdefault(rule[0], []).append(rule[1] if rule[1].removeprefix("not") != query else query)

        def live(concept: str) -> bool:
            return query in targets.get(concept, []) or any(len(targets.get(t, [])) > 1
                                                            for t in targets.get(concept, []))

        steps = [s.split() for s in encoded.steps]
        assert [f for f in facts if live(f)] == [steps[0][0]]
        for step in steps[:-1]:
            options = targets[step[0]]
            chosen = [query] if query in options else [t for t in options if len(targets.get(t, [])) > 1]
            assert chosen == [step[1].removeprefix("not") if step[1].removeprefix("not") == query else step[1]]
            assert len(options) >= 2  # a real choice at every hop


def _adjective_rules(record):
    """(subject, negated) of each rule with the query's adjective."""
    query = re.search(r"True or false: \w+ is (not )?(\w+)\.", record.question)
    found = []
    for sentence in _context_sentences(record):
        m = re.fullmatch(r"\s*(?:(?:Every|Each) (\w+) is|(\w+) are) (not )?(\w+)\.", sentence)
        if m and m.group(4) == query.group(2):
            found.append((m.group(1) or m.group(2), bool(m.group(3))))
    return found


def test_trap_share_takes_the_lone_concepts_adjective_away_from_a_share_of_problems(records):
    """Official shape: two rules carry the query's adjective, with opposite polarity. With trap_share=0.5 about
    half the problems keep only the chain's rule; every problem still checks, and the default is unchanged."""
    assert all(len(rules) == 2 and rules[0][1] != rules[1][1] for rules in map(_adjective_rules, records))
    assert generate(50, seed=0, options=ProntoQAOptions(trap_share=1.0)) == generate(50, seed=0)
    mixed = generate(1000, seed=0, options=ProntoQAOptions(trap_share=0.5))
    counts = [len(_adjective_rules(r)) for r in mixed]
    assert set(counts) == {1, 2} and 430 <= counts.count(2) <= 570
    for record in mixed:
        check_record(record)
    assert all(len(_adjective_rules(r)) == 1 for r in generate(100, seed=0, options=ProntoQAOptions(trap_share=0.0)))


def test_smaller_shapes_for_a_curriculum_check_and_the_defaults_are_the_official_shape(records):
    """dead_ends and distractor shrink a problem (fewer competing rules, a shorter context) for the early
    phases of a curriculum; every problem still checks, and at their defaults nothing changes."""
    assert generate(50, seed=0, options=ProntoQAOptions(dead_ends=1.0, distractor=True)) == generate(50, seed=0)
    official = [len(_context_sentences(r)) for r in records[:200]]
    assert set(official) == {4 * 5 + 3 + 2}  # 2h subtype rules + the f pair, 2h + 1 properties, 2 facts
    phases = [ProntoQAOptions(hops=2, dead_ends=0.0, distractor=False, trap_share=0.0),
              ProntoQAOptions(hops=3, dead_ends=0.5, distractor=False, trap_share=0.5),
              ProntoQAOptions(hops=5, dead_ends=0.5, distractor=True, trap_share=1.0)]
    lengths = []
    for opts in phases:
        problems = generate(300, seed=4, options=opts)
        for record in problems:
            check_record(record)
            assert len(record.steps) == opts.hops + 1
        sentences = [len(_context_sentences(r)) for r in problems]
        lengths.append(sum(sentences) / len(sentences))
        facts = [s for r in problems for s in _context_sentences(r) if re.fullmatch(r"\s*[A-Z][a-z]+ is an? [a-z]+\.", s)]
        assert len(facts) == len(problems) * (2 if opts.distractor else 1)
    # phase 1: the chain (2 subtype rules), its 2 properties, the lone concept's, one fact; growing after
    assert lengths[0] == 2 + 2 + 1 + 1 and lengths[0] < lengths[1] < lengths[2] < official[0]
    with pytest.raises(ValueError, match="dead_ends"):
        generate(1, options=ProntoQAOptions(dead_ends=1.5))
