"""ProntoQA problems (Saparov & He 2022) as the Coconut paper trains on them.

The Coconut paper's ProntoQA comes from the official generator run with 5 hops, a fictional ontology,
random sentence order and no few-shot examples; this module builds problems of the same shape (the
structure and rates below were read from that generator and checked against its released data):

* an ontology of ``2 * hops + 4`` fictional concepts: a chain ``c_hops -> ... -> c_1 -> c_0`` of subtype
  rules; each chain concept below the top also has a second parent ``P_i`` (a dead end); a separate pair
  ``f -> e``; and a lone concept ``d``;
* one property rule for every concept except ``c_0``, ``e`` and ``d``, each from its own adjective family;
  ``d`` gets ``c_1``'s adjective with the opposite polarity (so finding "the sentence with the adjective"
  is a coin flip) and appears nowhere else;
* two facts about the person, after all the rules in random order: the true start (``Max is a c_hops.``)
  and a distractor (``Max is a f.``);
* the query ``True or false: Max is [not] <adjective>.``, decided by climbing ``hops - 1`` subtype rules
  and applying ``c_1``'s property rule.

Every hop thus has a competing branch. The chain of thought is one step per rule applied,
``<what is known so far>. <the rule used>.``, and a last step that states the conclusion alone
(``Max is not wooden.``): ``hops + 1`` steps, the answer ``True`` or ``False``. Rules are worded
``Xs are Ys.`` half the time and ``Every X is a Y.`` / ``Each X is a Y.`` a quarter each.

One deliberate difference: labels are balanced exactly (the official generator tosses a coin per problem).

:func:`check_record` re-derives the answer and checks the proof from the question text alone.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ..config import option
from ..errors import UsageError
from .records import Record

__all__ = [
    "ProntoQAOptions",
    "generate",
    "check_record",
    "DEFAULT_CONCEPTS",
    "DEFAULT_NAMES",
    "ADJECTIVE_FAMILIES",
]

# The official generator's fictional concept words (a problem uses 2 * hops + 4 of them).
DEFAULT_CONCEPTS = (
    "wumpus", "yumpus", "zumpus", "dumpus", "rompus", "numpus", "tumpus", "vumpus", "impus", "jompus",
    "gorpus", "shumpus", "lempus", "sterpus", "grimpus", "lorpus", "brimpus",
)  # fmt: skip

DEFAULT_NAMES = "Fae,Rex,Sally,Max,Alex,Sam,Polly,Stella,Wren"

# The official adjective families. Words in one family exclude each other ("bright" vs "dull"), so a
# problem uses each family at most once: the queried adjective's family for c_1 and d, one other family
# for each other property.
ADJECTIVE_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("blue", "red", "brown", "orange"),
    ("small", "large"),
    ("metallic", "wooden", "luminous", "liquid"),
    ("transparent", "opaque"),
    ("nervous", "happy", "feisty", "shy"),
    ("bright", "dull"),
    ("sweet", "sour", "spicy", "bitter"),
    ("floral", "fruity", "earthy"),
    ("hot", "cold", "temperate"),
    ("kind", "mean", "angry", "amenable", "aggressive"),
    ("melodic", "muffled", "discordant", "loud"),
    ("slow", "moderate", "fast"),
    ("windy", "sunny", "overcast", "rainy", "snowy"),
)
_ADJECTIVES = frozenset(word for family in ADJECTIVE_FAMILIES for word in family)

# Rule wordings and their odds in the official generator: plural half the time, "Every"/"Each" a quarter each.
_TEMPLATES = ("plural", "plural", "every", "each")
# Chance that a property rule is negated: the official generator's rates after its proof-walk rejection.
NEGATED_ON_CHAIN = 0.277
NEGATED_OFF_CHAIN = 1 / 3


@dataclass
class ProntoQAOptions:
    # The CLI shows metadata["help"] as each flag's help.
    hops: int = option(5, "rules the proof applies (steps = hops + 1, the last one the conclusion)")
    names: str = option(DEFAULT_NAMES, "comma-separated person names")
    concepts: str = option("", "comma-separated lowercase concept words; empty = the official 17")
    trap_share: float = option(
        1.0, "share of problems whose lone d carries c_1's adjective with the opposite polarity (the official "
        "generator: always). In the others d gets an adjective of its own, so the conclusion's polarity is a "
        "plain copy of the one rule with the query's adjective: a training curriculum (docs/prontoqa_full_cpu.md)")
    dead_ends: float = option(
        1.0, "share of the chain concepts c_1..c_hops that get a dead-end second parent P_i (with its property "
        "rule); the official generator: all. Fewer make shorter problems with fewer competing rules: a curriculum")
    distractor: bool = option(
        True, "the separate pair f -> e with f's property and the distractor fact 'Max is a f.' (the official "
        "generator: always); false drops these 3 sentences: a curriculum")

    def name_list(self) -> list[str]:
        return [n.strip() for n in self.names.split(",") if n.strip()]

    def concept_list(self) -> list[str]:
        if not self.concepts.strip():
            return list(DEFAULT_CONCEPTS)
        return [c.strip() for c in self.concepts.split(",") if c.strip()]

    def concepts_needed(self) -> int:
        # the chain c_0..c_hops, a second parent for c_1..c_hops, the f -> e pair and the lone d
        return 2 * self.hops + 4

    def families_needed(self) -> int:
        # a property for c_1..c_hops, for each second parent and for f
        return 2 * self.hops + 1

    def validate(self) -> None:
        if not 0.0 <= self.dead_ends <= 1.0:
            raise UsageError(f"ProntoQAOptions.dead_ends must be in [0, 1], got {self.dead_ends!r}")
        if not 0.0 <= self.trap_share <= 1.0:
            raise UsageError(f"ProntoQAOptions.trap_share must be in [0, 1], got {self.trap_share!r}")
        if self.trap_share < 1.0 and isinstance(self.hops, int) and self.families_needed() >= len(ADJECTIVE_FAMILIES):
            raise UsageError(f"ProntoQAOptions.trap_share < 1 needs an adjective family to spare for d, and "
                             f"hops={self.hops} uses all {len(ADJECTIVE_FAMILIES)}")
        if not isinstance(self.hops, int) or isinstance(self.hops, bool):
            raise UsageError(f"ProntoQAOptions.hops must be an int, got {self.hops!r}")
        if self.hops < 1:
            raise UsageError(f"ProntoQAOptions.hops must be at least 1, got {self.hops}")
        if self.families_needed() > len(ADJECTIVE_FAMILIES):
            raise UsageError(f"ProntoQAOptions.hops={self.hops} needs {self.families_needed()} adjective families, "
                             f"but there are {len(ADJECTIVE_FAMILIES)} (hops can be at most "
                             f"{(len(ADJECTIVE_FAMILIES) - 1) // 2})")
        names = self.name_list()
        if not names:
            raise UsageError("ProntoQAOptions.names lists no name")
        for n in names:
            if not re.fullmatch(r"[A-Z][a-z]+", n) or n in ("Every", "Each"):
                raise UsageError(f"ProntoQAOptions.names: {n!r} is not a capitalised single word")
        concepts = self.concept_list()
        if len(set(concepts)) != len(concepts):
            raise UsageError("ProntoQAOptions.concepts lists a word twice")
        for c in concepts:
            if not re.fullmatch(r"[a-z]+", c):
                raise UsageError(f"ProntoQAOptions.concepts: {c!r} is not a lowercase word")
            if c in _ADJECTIVES:
                raise UsageError(f"ProntoQAOptions.concepts: {c!r} is also an adjective")
            if _singular(_plural(c)) != c:
                raise UsageError(f"ProntoQAOptions.concepts: the plural of {c!r} cannot be read back")
        if {c.capitalize() for c in concepts} & set(names):
            raise UsageError("ProntoQAOptions: a name is also a concept word")
        if len(concepts) < self.concepts_needed():
            raise UsageError(f"ProntoQAOptions needs {self.concepts_needed()} concept words for hops={self.hops}, "
                             f"but only {len(concepts)} are available")


# --- wording -------------------------------------------------------------------------------------


def _plural(word: str) -> str:
    return word + "es" if word.endswith(("s", "x", "z", "ch", "sh")) else word + "s"


def _singular(word: str) -> str:
    if word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _subtype_sentence(child: str, parent: str, template: str) -> str:
    if template == "plural":
        return f"{_plural(child).capitalize()} are {_plural(parent)}."
    return f"{template.capitalize()} {child} is {_article(parent)} {parent}."


def _property_sentence(concept: str, adjective: str, negated: bool, template: str) -> str:
    neg = "not " if negated else ""
    if template == "plural":
        return f"{_plural(concept).capitalize()} are {neg}{adjective}."
    return f"{template.capitalize()} {concept} is {neg}{adjective}."


# --- generation ----------------------------------------------------------------------------------


def _make_problem(rng: random.Random, opts: ProntoQAOptions, answer: bool) -> Record:
    h = opts.hops
    words = rng.sample(opts.concept_list(), opts.concepts_needed())
    chain = words[:h + 1]  # chain[i] is c_i: chain[h] is the person's kind, chain[0] the top
    second = words[h + 1:2 * h + 1]  # second[i - 1] is P_i, the dead-end parent of c_i
    f, e, d = words[2 * h + 1:]
    name = rng.choice(opts.name_list())
    families = rng.sample(ADJECTIVE_FAMILIES, opts.families_needed())
    adjective = rng.choice(families[0])
    query_negated = rng.random() < 0.5
    # True exactly when c_1's property rule and the query agree on "not".
    rule_negated = query_negated if answer else not query_negated

    # As with trap_share: the smaller shapes draw their extra numbers only when asked for, so the official
    # shape stays what earlier versions generated for the same seed.
    kept = [i for i in range(1, h + 1) if opts.dead_ends >= 1.0 or rng.random() < opts.dead_ends]
    dead_ends = [second[i - 1] for i in kept]
    subtypes = [(chain[i], chain[i - 1]) for i in range(h, 0, -1)]
    subtypes += [(chain[i], second[i - 1]) for i in kept] + ([(f, e)] if opts.distractor else [])
    others = iter(families[1:])
    # Only a run that asks for trap-free problems draws the extra numbers, so official-shape data stays
    # identical to what earlier versions generated for the same seed.
    if opts.trap_share < 1.0 and rng.random() >= opts.trap_share:
        spare = [family for family in ADJECTIVE_FAMILIES if family not in families]
        d_property = (d, rng.choice(rng.choice(spare)), rng.random() < NEGATED_OFF_CHAIN)
    else:
        d_property = (d, adjective, not rule_negated)
    properties = [(chain[1], adjective, rule_negated), d_property]
    for i in range(2, h + 1):
        properties.append((chain[i], rng.choice(next(others)), rng.random() < NEGATED_ON_CHAIN))
    for concept in [*dead_ends, *([f] if opts.distractor else [])]:
        properties.append((concept, rng.choice(next(others)), rng.random() < NEGATED_OFF_CHAIN))

    subtype_rule = {pair: _subtype_sentence(*pair, rng.choice(_TEMPLATES)) for pair in subtypes}
    property_rule = {prop: _property_sentence(*prop, rng.choice(_TEMPLATES)) for prop in properties}
    rules = list(subtype_rule.values()) + list(property_rule.values())
    rng.shuffle(rules)
    facts = [f"{name} is {_article(chain[h])} {chain[h]}."] + ([f"{name} is {_article(f)} {f}."] if opts.distractor else [])
    rng.shuffle(facts)
    query = f"True or false: {name} is {'not ' if query_negated else ''}{adjective}."

    steps = []
    for i in range(h, 0, -1):
        known = f"{name} is {_article(chain[i])} {chain[i]}."
        used = subtype_rule[(chain[i], chain[i - 1])] if i > 1 else property_rule[properties[0]]
        steps.append(f"{known} {used}")
    steps.append(f"{name} is {'not ' if rule_negated else ''}{adjective}.")
    return Record(question=" ".join(rules + facts + [query]), steps=steps, answer="True" if answer else "False")


def generate(n: int, seed: int = 0, options: ProntoQAOptions | None = None) -> list[Record]:
    """``n`` problems; exactly ``n // 2`` answers are ``True`` (the odd one out is drawn)."""
    opts = options if options is not None else ProntoQAOptions()
    opts.validate()
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    rng = random.Random(seed)
    # Fixing the answer first and building the problem around it balances the labels exactly
    # instead of only in expectation.
    answers = [True] * (n // 2) + [False] * (n // 2)
    if n % 2:
        answers.append(rng.random() < 0.5)
    rng.shuffle(answers)
    return [_make_problem(rng, opts, a) for a in answers]


# --- checking ------------------------------------------------------------------------------------

_SENTENCE = re.compile(r"[^.]+\.")
_QUERY = re.compile(r"True or false: ([A-Z][a-z]+) is (not )?([a-z]+)\.")
_FACT = re.compile(r"([A-Z][a-z]+) is (?:a|an) ([a-z]+)\.")
_SINGULAR_RULE = re.compile(r"(?:Every|Each) ([a-z]+) is (not )?(?:(a|an) )?([a-z]+)\.")
_PLURAL_RULE = re.compile(r"([A-Z][a-z]+) are (not )?([a-z]+)\.")


@dataclass(frozen=True)
class _Rule:
    subject: str
    predicate: str  # a concept for a subtype rule, an adjective for a property rule
    is_property: bool
    negated: bool


def _parse_rule(sentence: str) -> _Rule | None:
    m = _SINGULAR_RULE.fullmatch(sentence)
    if m:
        subject, neg, article, predicate = m.groups()
        if article is None and predicate not in _ADJECTIVES:
            raise ValueError(f"unknown adjective {predicate!r} in {sentence!r}")
        if article is not None and neg:
            raise ValueError(f"negated subtype rules are not part of ProntoQA: {sentence!r}")
        return _Rule(subject, predicate, article is None, bool(neg))
    m = _PLURAL_RULE.fullmatch(sentence)
    if m:
        subject, neg, predicate = m.groups()
        subject = _singular(subject[0].lower() + subject[1:])
        # "Xs are Ys." and "Xs are bright." share a shape; only the vocabulary tells them apart.
        if predicate in _ADJECTIVES:
            return _Rule(subject, predicate, True, bool(neg))
        if neg:
            raise ValueError(f"negated subtype rules are not part of ProntoQA: {sentence!r}")
        return _Rule(subject, _singular(predicate), False, False)
    return None


def _sentences(text: str) -> list[str]:
    found = [s.strip() for s in _SENTENCE.findall(text)]
    if "".join(found).replace(" ", "") != text.replace(" ", ""):
        raise ValueError(f"text does not split into sentences ending in '.': {text!r}")
    return found


def check_record(record: Record) -> None:
    """Raise ValueError unless the question's rules decide the query as ``record.answer`` says and
    ``record.steps`` is a correct proof of it, one rule per step, each rule quoted from the question.
    """
    question = record.question
    marker = question.find("True or false:")
    if marker < 0:
        raise ValueError("question has no 'True or false:' query")
    query = _QUERY.fullmatch(question[marker:].strip())
    if query is None:
        raise ValueError(f"cannot parse query {question[marker:]!r}")
    person, query_neg, adjective = query.group(1), bool(query.group(2)), query.group(3)

    context = _sentences(question[:marker])
    rules: dict[str, _Rule] = {}
    starts: set[str] = set()
    for sentence in context:
        rule = _parse_rule(sentence)
        if rule is not None:
            rules[sentence] = rule
            continue
        fact = _FACT.fullmatch(sentence)
        if fact is None:
            raise ValueError(f"cannot parse sentence {sentence!r}")
        if fact.group(1) != person:
            raise ValueError(f"fact about {fact.group(1)!r}, but the query asks about {person!r}")
        starts.add(fact.group(2))
    if not starts:
        raise ValueError(f"no fact says what {person!r} is")

    # Forward chaining to a fixed point; the ontology is small, so the simple loop is enough.
    kinds = set(starts)
    changed = True
    while changed:
        changed = False
        for rule in rules.values():
            if not rule.is_property and rule.subject in kinds and rule.predicate not in kinds:
                kinds.add(rule.predicate)
                changed = True
    polarities = {
        rule.negated for rule in rules.values()
        if rule.is_property and rule.predicate == adjective and rule.subject in kinds
    }  # fmt: skip
    if len(polarities) != 1:
        what = "contradict each other on" if polarities else "do not decide"
        raise ValueError(f"the rules {what} whether {person} is {adjective}")
    derived_negated = polarities.pop()
    expected = "True" if derived_negated == query_neg else "False"
    if record.answer != expected:
        raise ValueError(f"answer is {record.answer!r}, but the rules give {expected!r}")

    _check_steps(record.steps, rules, person, starts, adjective, derived_negated)


def _check_steps(
    steps: list[str], rules: dict[str, _Rule], person: str, starts: set[str], adjective: str, negated: bool
) -> None:
    if len(steps) < 2:
        raise ValueError(f"expected the rule steps and a conclusion, got {len(steps)} step(s)")
    conclusion = f"{person} is {'not ' if negated else ''}{adjective}."
    if steps[-1] != conclusion:
        raise ValueError(f"the last step should state the conclusion {conclusion!r}, got {steps[-1]!r}")
    steps = steps[:-1]
    first = _FACT.match(steps[0])
    if first is None or first.group(2) not in starts:
        raise ValueError(f"step 0 should start from a fact of the question about {person}")
    current = first.group(2)
    for i, step in enumerate(steps):
        parts = _sentences(step)
        if len(parts) != 2:
            raise ValueError(f"step {i} should be two sentences, got {step!r}")
        known = _FACT.fullmatch(parts[0])
        if known is None or known.group(1) != person or known.group(2) != current:
            raise ValueError(f"step {i} should start from '{person} is {_article(current)} {current}.'")
        rule = rules.get(parts[1])
        if rule is None:
            raise ValueError(f"step {i} uses {parts[1]!r}, which is not a rule of the question")
        if rule.subject != current:
            raise ValueError(f"step {i} applies a rule about {rule.subject!r} to a {current!r}")
        last = i == len(steps) - 1
        if not last:
            if rule.is_property:
                raise ValueError(f"step {i} states a property before the chain reaches its end")
            current = rule.predicate
        elif not (rule.is_property and rule.predicate == adjective and rule.negated == negated):
            raise ValueError(f"the last step does not state whether {person} is {adjective}")
