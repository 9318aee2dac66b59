"""ProntoQA-style problems (Saparov & He 2022) in the form the Coconut paper trains on.

A problem is a small fictional ontology: subtype rules (``Every wumpus is a yumpus.``), property
rules (``Yumpuses are not bright.``), one fact about a person (``Max is a wumpus.``) and a query
(``True or false: Max is bright.``). The person's concept sits at the bottom of a chain of
``hops - 1`` subtype rules whose last concept carries the queried property, so deciding the query
takes exactly ``hops`` rule applications; each step of the chain of thought is one of them, written
as ``<what is known so far>. <the rule used>.``

Distractors keep the query from being answerable without following the chain:

* the ontology is a tree and every off-chain concept is a new leaf, so off-chain subtype rules are
  never reachable from the person and cannot shorten or fork the proof;
* the queried adjective also appears, with the opposite polarity, on a sibling of the
  property-carrying concept (as ProntoQA does), so "find the sentence with the adjective" is a
  coin flip;
* other property rules use adjectives from other families (never ``dull`` next to ``bright``), so
  whatever the person inherits is never contradictory.

:func:`check_record` re-derives the answer from the question text alone.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ..config import option
from .records import Record

__all__ = [
    "ProntoQAOptions",
    "generate",
    "check_record",
    "DEFAULT_CONCEPTS",
    "DEFAULT_NAMES",
    "ADJECTIVE_FAMILIES",
]

# ProntoQA's own fictional words first, then more of the same shape so that long chains with many
# distractors still find enough distinct concepts.
DEFAULT_CONCEPTS = (
    "wumpus", "yumpus", "zumpus", "dumpus", "impus", "jompus", "numpus", "rompus", "tumpus",
    "vumpus", "lempus", "sterpus", "gorpus", "lorpus", "shumpus", "brimpus", "grimpus", "gwompus",
    "bompus", "felpus", "hilpus", "kelpus", "quompus", "scrumpus", "tarpus", "yerpus", "zorpus",
    "chimpus", "dralpus", "frompus", "plimpus", "worpus",
)  # fmt: skip

DEFAULT_NAMES = "Alex,Fae,Max,Polly,Rex,Sally,Sam,Stella,Wren"

# Words in one family exclude each other in plain English ("bright" vs "dull"); a problem uses at
# most one word per family so the text never states something a reader would find contradictory.
ADJECTIVE_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("bright", "dull"),
    ("hot", "cold"),
    ("happy", "sad"),
    ("kind", "mean"),
    ("large", "small"),
    ("opaque", "transparent"),
    ("red", "blue"),
    ("fruity", "sour", "spicy", "sweet"),
    ("aggressive", "amenable"),
    ("feisty", "shy"),
    ("liquid", "metallic", "wooden"),
    ("earthy",),
    ("floral",),
    ("luminous",),
    ("nervous",),
)
_ADJECTIVES = frozenset(word for family in ADJECTIVE_FAMILIES for word in family)

# Rule wordings; ProntoQA varies them so a model cannot key on one phrasing.
_TEMPLATES = ("every", "each", "plural")


@dataclass
class ProntoQAOptions:
    # The CLI shows metadata["help"] as each flag's help.
    hops: int = option(5, "rules the proof applies, = number of steps")
    distractor_rules: int = option(6, "subtype rules about concepts off the proof chain")
    distractor_properties: int = option(6, "property rules with adjectives other than the queried one")
    sibling_distractor: bool = option(True, "also give the queried adjective, negated, to an off-chain concept")
    names: str = option(DEFAULT_NAMES, "comma-separated person names")
    concepts: str = option("", "comma-separated lowercase concept words; empty = built-in list")
    fact_last: bool = option(False, "put the person's fact just before the query, not shuffled in")

    def name_list(self) -> list[str]:
        return [n.strip() for n in self.names.split(",") if n.strip()]

    def concept_list(self) -> list[str]:
        if not self.concepts.strip():
            return list(DEFAULT_CONCEPTS)
        return [c.strip() for c in self.concepts.split(",") if c.strip()]

    def concepts_needed(self) -> int:
        # chain + the sibling (standalone when there is no off-chain rule to hang it on) + one new
        # concept per off-chain rule.
        return self.hops + int(self.sibling_distractor) + self.distractor_rules - (
            1 if self.sibling_distractor and self.distractor_rules >= 2 else 0
        )

    def validate(self) -> None:
        for name in ("hops", "distractor_rules", "distractor_properties"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"ProntoQAOptions.{name} must be an int, got {value!r}")
        if self.hops < 1:
            raise ValueError(f"ProntoQAOptions.hops must be at least 1, got {self.hops}")
        if self.distractor_rules < 0 or self.distractor_properties < 0:
            raise ValueError("ProntoQAOptions.distractor_rules and distractor_properties must be >= 0")
        if self.distractor_properties > len(ADJECTIVE_FAMILIES) - 1:
            raise ValueError(
                f"ProntoQAOptions.distractor_properties is {self.distractor_properties}, but only "
                f"{len(ADJECTIVE_FAMILIES) - 1} adjective families remain besides the queried one"
            )
        names = self.name_list()
        if not names:
            raise ValueError("ProntoQAOptions.names lists no name")
        for n in names:
            if not re.fullmatch(r"[A-Z][a-z]+", n) or n in ("Every", "Each"):
                raise ValueError(f"ProntoQAOptions.names: {n!r} is not a capitalised single word")
        concepts = self.concept_list()
        if len(set(concepts)) != len(concepts):
            raise ValueError("ProntoQAOptions.concepts lists a word twice")
        for c in concepts:
            if not re.fullmatch(r"[a-z]+", c):
                raise ValueError(f"ProntoQAOptions.concepts: {c!r} is not a lowercase word")
            if c in _ADJECTIVES:
                raise ValueError(f"ProntoQAOptions.concepts: {c!r} is also an adjective")
            if _singular(_plural(c)) != c:
                raise ValueError(f"ProntoQAOptions.concepts: the plural of {c!r} cannot be read back")
        if {c.capitalize() for c in concepts} & set(names):
            raise ValueError("ProntoQAOptions: a name is also a concept word")
        if len(concepts) < self.concepts_needed():
            raise ValueError(
                f"ProntoQAOptions needs {self.concepts_needed()} concept words for hops={self.hops} and "
                f"distractor_rules={self.distractor_rules}, but only {len(concepts)} are available"
            )


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
    name = rng.choice(opts.name_list())
    families = rng.sample(ADJECTIVE_FAMILIES, 1 + opts.distractor_properties)
    adjective = rng.choice(families[0])
    query_negated = rng.random() < 0.5
    # True exactly when the rule and the query agree on "not".
    rule_negated = query_negated if answer else not query_negated

    chain, pool = words[:h], words[h:]
    parent: dict[str, str] = {}  # child -> parent; one parent each keeps the ontology a tree
    subtype_templates: dict[str, str] = {}
    for child, par in zip(chain, chain[1:]):
        parent[child] = par
    nodes = list(chain)
    off_rules = opts.distractor_rules
    if off_rules >= 1:
        # Extending the chain upward gives the sibling somewhere to hang that is not below the
        # property-carrying concept (below it, the sibling would inherit the opposite polarity).
        top = pool.pop()
        parent[chain[-1]] = top
        nodes.append(top)
        off_rules -= 1
    sibling = None
    if opts.sibling_distractor:
        sibling = pool.pop()
        if off_rules >= 1:
            parent[sibling] = parent[chain[-1]]
            off_rules -= 1
        nodes.append(sibling)
    for _ in range(off_rules):
        # New leaves only: nothing off the chain becomes reachable from the person.
        leaf = pool.pop()
        parent[leaf] = rng.choice(nodes)
        nodes.append(leaf)
    for child in parent:
        subtype_templates[child] = rng.choice(_TEMPLATES)

    properties: list[tuple[str, str, bool]] = [(chain[-1], adjective, rule_negated)]
    if sibling is not None:
        properties.append((sibling, adjective, not rule_negated))
    for family in families[1:]:
        properties.append((rng.choice(nodes), rng.choice(family), rng.random() < 0.5))
    property_templates = [rng.choice(_TEMPLATES) for _ in properties]

    rules = [_subtype_sentence(c, p, subtype_templates[c]) for c, p in parent.items()]
    rules += [_property_sentence(c, a, n, t) for (c, a, n), t in zip(properties, property_templates)]
    fact = f"{name} is {_article(chain[0])} {chain[0]}."
    if opts.fact_last:
        rng.shuffle(rules)
        context = rules + [fact]
    else:
        context = rules + [fact]
        rng.shuffle(context)
    query = f"True or false: {name} is {'not ' if query_negated else ''}{adjective}."

    steps = []
    for i, concept in enumerate(chain):
        known = f"{name} is {_article(concept)} {concept}."
        if i < h - 1:
            used = _subtype_sentence(concept, chain[i + 1], subtype_templates[concept])
        else:
            used = _property_sentence(concept, adjective, rule_negated, property_templates[0])
        steps.append(f"{known} {used}")
    return Record(question=" ".join(context + [query]), steps=steps, answer="True" if answer else "False")


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
    start = None
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
        if start is not None:
            raise ValueError(f"more than one fact about {person!r}")
        start = fact.group(2)
    if start is None:
        raise ValueError(f"no fact says what {person!r} is")

    # Forward chaining to a fixed point; the ontology is small, so the simple loop is enough.
    kinds = {start}
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

    _check_steps(record.steps, rules, person, start, adjective, derived_negated)


def _check_steps(
    steps: list[str], rules: dict[str, _Rule], person: str, start: str, adjective: str, negated: bool
) -> None:
    if not steps:
        raise ValueError("no steps")
    current = start
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
