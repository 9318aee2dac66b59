"""Problem encodings: how a record is written for the model, and how the model's output is read back.

``text`` feeds the record as it is. ``graph`` is the compact symbolic form of Zhu, Hao et al. (2025,
"Reasoning by Superposition") for problems that carry a graph (ProsQA: ``idx_to_symbol``, ``edges``,
``root``, ``target``, ``neg_target``): node ids instead of names, an edge written ``src dst |``, the two
options after ``Q`` and the asked person after ``R``::

    question  Every shumpus is a rempus. Davis is a shumpus. ... Is Tom a lempus or scrompus?
    graph     2 5 | 0 2 | ... Q 16 13 R 1
    steps     Tom is a terpus. / Every terpus is a brimpus.   ->   1 3 / 3 14
    answer    Tom is a lempus.   ->   16

About 115 tokens a question instead of about 215 words. The node ids are the record's own indices
(``idx_to_symbol``): in the official files and our generator they follow the graph's growth order.
Edges keep the order of the question's facts and the options keep theirs, so nothing the model sees
is reordered. Output is decoded back to the file's words (:meth:`Encoding.decode_output`), so every
evaluation row and accuracy is in the words of the file and any scorer can check them.

The markers are single letters rather than the paper's ``[Q]``/``[R]`` so that the byte-level word
tokenizer keeps each one a single token.

``graph_edges`` is ``graph`` with each edge ONE token, ``<e{src}_{dst}>``, instead of three; steps, answer,
``Q`` and ``R`` stay as they are::

    graph_edges  <e2_5> <e0_2> ... Q 16 13 R 1

The pair tokens are a fixed block of N x N vocabulary entries (N = ``data.node_ids``), and the model reads
each as a source-role embedding of ``src`` plus a destination-role embedding of ``dst``
(:mod:`latentcot.models.pair_embedding`), so what it learns about an id carries over to every pair that
holds it. Training relabels each problem's ids into 0..N-1 at random every epoch (:func:`augment_graph`).

``rules`` does the same for ProntoQA: each rule is ``subject predicate |`` whatever its wording
(``Every wumpus is a yumpus.``, ``Wumpuses are yumpuses.`` and ``Each wumpus is a yumpus.`` all become
``wumpus yumpus |``), a negated property is one word (``notmetallic``), a fact about the person is
``R concept |``, and the query ``Q [not]adjective``::

    question  Each lempus is not metallic. ... Lorpuses are yumpuses. Wren is a lorpus. ... True or false: Wren is metallic.
    rules     lempus notmetallic | ... lorpus yumpus | R lorpus | ... Q metallic
    steps     Wren is a lorpus. Lorpuses are yumpuses.   ->   lorpus yumpus
    steps     Wren is metallic.   ->   metallic
    answer    True   ->   True

Concept and adjective words stay words (ProntoQA draws them from fixed lists); only the templates go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Sequence

from ..errors import ConfigError
from . import prontoqa
from .graph import ASK_RE, FACT_RE, GRAPH_FIELDS, Graph, ProsQAGraph, frontier_nodes
from .records import DataError, Record

EDGE_END = "|"
OPTIONS_MARK = "Q"
ROOT_MARK = "R"

_PAIR_RE = re.compile(r"\s*(\d+)\s+(\d+)\s*")
# graph_edges: one token an edge (latentcot.models.pair_embedding reads it as source[src] + destination[dst])
_EDGE_TOKEN_RE = re.compile(r"<e(\d+)_(\d+)>")
# Token Assorted's latent block (latentcot.tokenization's BEGIN_LATENT, codes, END_LATENT): the method's own
# tokens, neither the file's words nor an encoding of them, so reading output back leaves it as written
LATENT_BLOCK_RE = re.compile(r"\s*<bol>(?:\s*<latent_\d+>)*\s*<eol>")
_ANSWER_TAIL_RE = re.compile(r"(.*?)(#+\s*)([^#]*)", re.DOTALL)  # steps, the last "###", the answer


def unmapped_mark(piece: str) -> str:
    """How a piece of model output with no counterpart in the file's words is written in its place."""
    return f"<unmapped: {piece.strip()}>"


@dataclass(frozen=True)
class ReadOutput:
    """A generated text in the file's words; ``unmapped`` lists the pieces (as the model wrote them) that
    have no counterpart there, each shown in ``text`` as :func:`unmapped_mark` of it."""

    text: str
    unmapped: tuple[str, ...] = ()


class Encoding:
    """Identity: the record as it is (``data.encoding: text``)."""

    name: ClassVar[str] = "text"

    def encode(self, record: Record, source: str = "<memory>", where: str = "record 0") -> Record:
        return record

    def read_output(self, generated: str, encoded: Record) -> ReadOutput:
        """A generated text (for the encoded record) in the words of the original file, with what could
        not be mapped back."""
        return ReadOutput(generated)

    def decode_output(self, generated: str, encoded: Record) -> str:
        """A generated text (for the encoded record) in the words of the original file."""
        return self.read_output(generated, encoded).text

    def encode_all(self, records: Sequence[Record], source: str = "<memory>") -> list[Record]:
        return [self.encode(r, source, f"record {i}") for i, r in enumerate(records)]

    def node_texts(self, record: Record) -> list[str]:
        """How each graph node is written after a space, as the model reads it (for thought decoding)."""
        return [" " + name for name in record.extra["idx_to_symbol"]]

    def tokenizer_records(self, encoded: Sequence[Record]) -> list[Record]:
        """What a tokenizer trained for this encoding learns its words from, given the encoded training
        records: the records themselves, plus whatever words the model must know beyond them."""
        return list(encoded)


class GraphEncoding(Encoding):
    """Node ids and ``src dst |`` edges (``data.encoding: graph``)."""

    name = "graph"

    def encode(self, record: Record, source: str = "<memory>", where: str = "record 0") -> Record:
        def fail(message: str, field: str) -> DataError:
            return DataError(source, where, f"{message} (data.encoding={self.name})", field)

        extra = record.extra
        if not all(k in extra for k in GRAPH_FIELDS):
            extra = dict(extra, **graph_fields_from_question(record.question, source, where))
        names = extra["idx_to_symbol"]
        index = {name: i for i, name in enumerate(names)}
        body, ask = _split_question(record.question)
        if ask is None:
            raise fail("no final 'Is X a A or B?' sentence", "question")
        person, first, second = ask.groups()
        facts = []
        for m in FACT_RE.finditer(body):
            parent, child = m.group(1) or m.group(2), m.group(3)
            if parent not in index or child not in index:
                raise fail(f"fact {m.group(0)!r} names a node missing from idx_to_symbol", "question")
            facts.append((index[parent], index[child]))
        in_facts = {node for fact in facts for node in fact}
        for role, name in (("person", person), ("option", first), ("option", second)):
            if name not in index:
                raise fail(f"{name!r} is not in idx_to_symbol", "question")
            if index[name] not in in_facts:
                # the model would be asked about a node id it has no fact for: its answer means nothing
                raise fail(f"the {role} {name!r} appears in no fact of the question", "question")
        if index[person] != extra["root"]:
            raise fail(f"asks about {person}, but root is {names[extra['root']]}", "question")
        steps = []
        for i, step in enumerate(record.steps):
            m = FACT_RE.fullmatch(step.strip())
            if m is None or (m.group(1) or m.group(2)) not in index or m.group(3) not in index:
                raise fail(f"step {i} {step!r} is not a fact about nodes of the graph", "steps")
            steps.append(f" {index[m.group(1) or m.group(2)]} {index[m.group(3)]}")
        m = FACT_RE.fullmatch(record.answer.strip())
        if record.answer.strip() and (m is None or m.group(3) not in index):
            raise fail(f"{record.answer!r} is not '<person> is a <node>.'", "answer")
        question = self.write_question(facts, (index[first], index[second]), index[person])
        answer = str(index[m.group(3)]) if m else ""  # no answer: a bare question to generate for
        return Record(question=question, steps=steps, answer=answer, extra=dict(extra))

    @staticmethod
    def write_question(edges: Sequence[tuple[int, int]], options: tuple[int, int], root: int) -> str:
        """The encoded question of a graph: its edges in the order given, the options, the root."""
        return write_graph_question(edges, options, root, edge_tokens=False)

    def decode(self, encoded: Record) -> Record:
        """The word record an encoded one stands for (the inverse of :meth:`encode`)."""
        graph = ProsQAGraph.of(encoded)
        edges, options, root = parse_graph_question(encoded.question)
        # the question's own edges say who is a person; the record's fields give the names and the root
        asked = ProsQAGraph(graph.names, edges, root)
        question = asked.question([asked.fact(p, c) for p, c in edges], *options)
        steps = [self._step_words(step, asked) or step for step in encoded.steps]
        answer = self._answer_words(encoded.answer, graph) or encoded.answer
        return Record(question=question, steps=steps, answer=answer, extra=dict(encoded.extra))

    def read_output(self, generated: str, encoded: Record) -> ReadOutput:
        graph = ProsQAGraph.of(encoded)
        return _read_steps_and_answer(generated, lambda line: self._step_words(line, graph),
                                      lambda answer: self._answer_words(answer, graph))

    def node_texts(self, record: Record) -> list[str]:
        return [f" {i}" for i in range(len(record.extra["idx_to_symbol"]))]

    @staticmethod
    def _step_words(text: str, graph: ProsQAGraph) -> str | None:
        m = _PAIR_RE.fullmatch(text)
        if m is None:
            return None
        parent, child = int(m.group(1)), int(m.group(2))
        # an id past the graph's, or (relabelled into data.node_ids) one no node of this problem holds
        if max(parent, child) >= len(graph.names) or not graph.names[parent] or not graph.names[child]:
            return None
        return graph.fact(parent, child)

    @staticmethod
    def _answer_words(text: str, graph: ProsQAGraph) -> str | None:
        value = text.strip()
        if value.isdigit() and int(value) < len(graph.names) and graph.names[int(value)]:
            return graph.answer(int(value))
        return None


UNUSED_NODE = ""  # idx_to_symbol's name for an id of data.node_ids that a relabelled problem does not use


def edge_token(parent: int, child: int) -> str:
    """The graph_edges token of one edge."""
    return f"<e{parent}_{child}>"


class GraphEdgesEncoding(GraphEncoding):
    """``graph`` with each edge one token ``<e{src}_{dst}>`` (``data.encoding: graph_edges``).

    ``node_ids`` (``data.node_ids``), when given, is how many node ids the model has pair tokens for: a
    problem with more nodes is refused with one error naming the file, the record and the config key."""

    name = "graph_edges"

    def __init__(self, node_ids: int | None = None):
        self.node_ids = node_ids

    def encode(self, record: Record, source: str = "<memory>", where: str = "record 0") -> Record:
        encoded = super().encode(record, source, where)
        self.check_nodes(encoded, source, where)
        return encoded

    @staticmethod
    def write_question(edges: Sequence[tuple[int, int]], options: tuple[int, int], root: int) -> str:
        return write_graph_question(edges, options, root, edge_tokens=True)

    def check_nodes(self, encoded: Record, source: str = "<memory>", where: str = "record 0") -> None:
        """One clear error when the record's graph has more nodes than ``data.node_ids``."""
        n = len(encoded.extra["idx_to_symbol"])
        if self.node_ids is not None and n > self.node_ids:
            raise DataError(source, where, f"the graph has {n} nodes, more than config key 'data.node_ids'="
                            f"{self.node_ids} (the node ids data.encoding=graph_edges has pair tokens for); "
                            f"raise data.node_ids to at least {n}", "idx_to_symbol")

    def node_words(self) -> str:
        """Every node id as the model writes it (`` 0 1 ... N-1``): a tokenizer must know all of them,
        since relabelling draws ids up to N-1 whatever the training records' own ids are."""
        if self.node_ids is None:
            return ""
        return "".join(f" {i}" for i in range(self.node_ids))

    def tokenizer_records(self, encoded: Sequence[Record]) -> list[Record]:
        """The records with their edge tokens taken out (the pair tokens are added to a vocabulary whole,
        :func:`latentcot.models.pair_embedding.add_pair_tokens`, not learnt as words), and one more holding
        every node id."""
        plain = [Record(_EDGE_TOKEN_RE.sub("", r.question), r.steps, r.answer, r.extra) for r in encoded]
        words = self.node_words()
        return plain + ([Record(question=words, steps=[], answer="")] if words else [])


NEGATION = "not"  # glued to the adjective: "notlarge" is one word, one token
_RULE_LINE_RE = re.compile(r"\s*([a-z]+) ([a-z]+)\s*")
_CONCLUSION_LINE_RE = re.compile(r"\s*([a-z]+)\s*")


def _polar(predicate: str, negated: bool | str | None) -> str:
    """A predicate with its polarity in the same word (``large`` / ``notlarge``)."""
    return f"{NEGATION}{predicate}" if negated else predicate


def _unpolar(word: str) -> tuple[str, bool] | None:
    """(adjective, negated) of a compact property word, or None for anything else."""
    if word in prontoqa._ADJECTIVES:
        return word, False
    if word.startswith(NEGATION) and word[len(NEGATION):] in prontoqa._ADJECTIVES:
        return word[len(NEGATION):], True
    return None


class RulesEncoding(Encoding):
    """ProntoQA's rules as ``subject predicate |`` (``data.encoding: rules``), a negated property as one
    word (``notlarge``).

    Every rule is then two tokens and every hop, the last included, is the same lookup: among the
    current subject's rules, copy the target that leads on (or matches the query's adjective). A separate
    negation token, before or after the adjective, made the last hop's polarity a lookup of its own that a
    4-layer model never learned (docs/prontoqa_full_cpu.md): copying "what follows the adjective" finds
    the query's own polarity and the lone concept's opposite one as often as the rule's."""

    name = "rules"

    def encode(self, record: Record, source: str = "<memory>", where: str = "record 0") -> Record:
        def fail(message: str, field: str) -> DataError:
            return DataError(source, where, f"{message} (data.encoding=rules)", field)

        marker = record.question.find("True or false:")
        query = prontoqa._QUERY.fullmatch(record.question[marker:].strip()) if marker >= 0 else None
        if query is None:
            raise fail("no final 'True or false: <Name> is [not] <adjective>.' sentence", "question")
        person, query_negated, adjective = query.groups()
        try:
            sentences = prontoqa._sentences(record.question[:marker])
        except ValueError as err:
            raise fail(str(err), "question") from None
        parts, sentence_of = [], {}
        for sentence in sentences:
            try:
                rule = prontoqa._parse_rule(sentence)
            except ValueError as err:
                raise fail(str(err), "question") from None
            if rule is not None:
                compact = f"{rule.subject} {_polar(rule.predicate, rule.negated)}"
                sentence_of[compact] = sentence
                parts.append(f"{compact} {EDGE_END}")
                continue
            fact = prontoqa._FACT.fullmatch(sentence)
            if fact is None or fact.group(1) != person:
                raise fail(f"{sentence!r} is neither a rule nor a fact about {person}", "question")
            parts.append(f"{ROOT_MARK} {fact.group(2)} {EDGE_END}")
        if not any(part.startswith(f"{ROOT_MARK} ") for part in parts):
            raise fail(f"no fact about {person}, the person the query asks about", "question")
        properties = {prop[0] for compact in sentence_of if (prop := _unpolar(compact.split()[1]))}
        if adjective not in properties:
            raise fail(f"the queried property {adjective!r} appears in no rule of the question", "question")
        parts.append(f"{OPTIONS_MARK} {_polar(adjective, query_negated)}")
        steps = [self._encode_step(step, person, i, fail) for i, step in enumerate(record.steps)]
        extra = dict(record.extra, rules_person=person, rules_sentences=sentence_of)
        return Record(question=" " + " ".join(parts), steps=steps, answer=record.answer, extra=extra)

    @staticmethod
    def _encode_step(step: str, person: str, i: int, fail) -> str:
        try:
            sentences = prontoqa._sentences(step)
        except ValueError:
            sentences = []
        try:
            rule = prontoqa._parse_rule(sentences[1]) if len(sentences) == 2 else None
        except ValueError as err:
            raise fail(f"step {i}: {err}", "steps") from None
        if rule is not None:
            return f" {rule.subject} {_polar(rule.predicate, rule.negated)}"
        conclusion = re.fullmatch(rf"{person} is (not )?([a-z]+)\.", step.strip())
        if conclusion is not None:
            return f" {_polar(conclusion.group(2), conclusion.group(1))}"
        raise fail(f"step {i} {step!r} is neither '<fact>. <rule>.' nor the conclusion", "steps")

    def read_output(self, generated: str, encoded: Record) -> ReadOutput:
        # the answer (True / False) is a word of the file already; anything else is no answer
        return _read_steps_and_answer(generated, lambda line: self._step_words(line, encoded),
                                      lambda answer: answer.strip() if answer.strip() in ("True", "False") else None)

    @staticmethod
    def _step_words(line: str, encoded: Record) -> str | None:
        person, sentence_of = encoded.extra["rules_person"], encoded.extra["rules_sentences"]
        rule = _RULE_LINE_RE.fullmatch(line)
        if rule is not None:
            subject = rule.group(1)
            compact = " ".join(rule.groups())
            if compact in sentence_of:
                return f"{person} is {'an' if subject[0] in 'aeiou' else 'a'} {subject}. {sentence_of[compact]}"
            return None
        conclusion = _CONCLUSION_LINE_RE.fullmatch(line)
        if conclusion is not None and (prop := _unpolar(conclusion.group(1))) is not None:
            return f"{person} is {'not ' if prop[1] else ''}{prop[0]}."
        return None

    def node_texts(self, record: Record) -> list[str]:
        raise ConfigError("data.encoding=rules has no graph nodes to read thoughts against (a ProsQA analysis)",
                          "data.encoding")


def graph_stage_targets(encoded: Record) -> list[list[str]]:
    """For stage k = 0 .. steps-1 of a ``graph``- or ``graph_edges``-encoded record, its candidate stage
    targets as answer texts (node ids): :func:`latentcot.data.graph.frontier_nodes` at depth k+1. The
    answer is among the last (and the only one there unless a longer path also reaches it)."""
    edges, _, root = parse_graph_question(encoded.question)
    target = int(encoded.answer)
    return [[str(n) for n in frontier_nodes(edges, root, target, k + 1)] for k in range(len(encoded.steps))]


def augment_graph(encoded: Record, rng, shuffle: bool = True, relabel: bool = False,
                  node_ids: int | None = None) -> Record:
    """A ``graph``- or ``graph_edges``-encoded record written anew, in its own encoding: its edges in a
    random order and its two options in a random order (``shuffle``), and its node ids renamed at random
    (``relabel``): by a permutation of the record's own ids (so no id outside the training vocabulary
    appears), or with ``node_ids`` (graph_edges: ``data.node_ids``) by a random injection into
    0..node_ids-1, ``idx_to_symbol`` then holding ``node_ids`` names, :data:`UNUSED_NODE` for the ids the
    problem does not use. The graph, the path and the answer are the same problem's; the word fields
    (``idx_to_symbol`` and the rest) follow the renaming, so the record still decodes to the same words.
    Zhu et al. re-shuffle every epoch; the follow-up ("Emergence of Superposition") relabels ids at random."""
    edges, options, root = parse_graph_question(encoded.question)
    n = len(encoded.extra["idx_to_symbol"])
    size = n
    rename = list(range(n))
    if relabel and node_ids is not None:
        if n > node_ids:
            raise ConfigError(f"config key 'data.node_ids': {node_ids} node ids, but a problem has {n} nodes",
                              "data.node_ids")
        size = node_ids
        rename = rng.sample(range(node_ids), n)
    elif relabel:
        rng.shuffle(rename)
    edges = [(rename[p], rename[c]) for p, c in edges]
    options = tuple(rename[o] for o in options)
    if shuffle:
        rng.shuffle(edges)
        if rng.random() < 0.5:
            options = options[::-1]
    question = write_graph_question(edges, options, rename[root], edge_tokens=has_edge_tokens(encoded.question))
    steps = [" {} {}".format(*(rename[int(x)] for x in step.split())) for step in encoded.steps]
    answer = str(rename[int(encoded.answer)]) if encoded.answer.strip() else encoded.answer
    extra = dict(encoded.extra)
    names = [UNUSED_NODE] * size
    for old, new in enumerate(rename):
        names[new] = encoded.extra["idx_to_symbol"][old]
    extra.update(idx_to_symbol=names, edges=[list(e) for e in edges], root=rename[root])
    for key in ("target", "neg_target"):
        if key in extra:
            extra[key] = rename[int(extra[key])]
    return Record(question=question, steps=steps, answer=answer, extra=extra)


def _read_steps_and_answer(generated: str, step_words, answer_words) -> ReadOutput:
    """Map each step line and the answer after the last ``#`` back to words; a piece the callbacks cannot
    map (they return None) is kept as :func:`unmapped_mark` of it. Blank lines and an empty answer stay."""
    unmapped: list[str] = []

    def mapped(piece: str, words) -> str:
        latent = LATENT_BLOCK_RE.match(piece)
        if latent:
            return latent.group(0) + mapped(piece[latent.end():], words)
        if not piece.strip():
            return piece
        text = words(piece)
        if text is None:
            unmapped.append(piece.strip())
            return unmapped_mark(piece)
        return text

    m = _ANSWER_TAIL_RE.fullmatch(generated)
    body = m.group(1) if m else generated
    text = "\n".join(mapped(line, step_words) for line in body.split("\n"))
    if m:
        answer = mapped(m.group(3), answer_words)
        text = f"{text}{m.group(2)}{answer}"
    return ReadOutput(text, tuple(unmapped))


def _split_question(question: str) -> tuple[str, re.Match | None]:
    at = question.rfind("Is ")
    if at < 0:
        return question, None
    return question[:at], ASK_RE.fullmatch(question[at:].strip())


def has_edge_tokens(question: str) -> bool:
    """Whether an encoded question is in the ``graph_edges`` form (``<e2_5>``) rather than ``graph``'s."""
    return _EDGE_TOKEN_RE.search(question) is not None


def write_graph_question(edges: Sequence[tuple[int, int]], options: Sequence[int], root: int,
                         edge_tokens: bool = False) -> str:
    """An encoded question: ``graph``'s `` 2 5 | 0 2 | ... Q 16 13 R 1``, or with ``edge_tokens``
    ``graph_edges``' `` <e2_5> <e0_2> ... Q 16 13 R 1``."""
    written = [edge_token(p, c) if edge_tokens else f"{p} {c} {EDGE_END}" for p, c in edges]
    return " " + " ".join([*written, OPTIONS_MARK, str(options[0]), str(options[1]), ROOT_MARK, str(root)])


def parse_graph_question(question: str) -> tuple[list[tuple[int, int]], tuple[int, int], int]:
    """Edges, the two options and the root of a ``graph``- or ``graph_edges``-encoded question (the form
    is told from the question: ``graph_edges`` writes its edges as ``<e2_5>``, spaced or not)."""
    pairs = [(int(p), int(c)) for p, c in _EDGE_TOKEN_RE.findall(question)]
    tokens = _EDGE_TOKEN_RE.sub(" ", question).split()
    q, r = tokens.index(OPTIONS_MARK), tokens.index(ROOT_MARK)
    if pairs:
        edges = pairs
    else:
        edge_tokens = tokens[:q]
        edges = [(int(edge_tokens[i]), int(edge_tokens[i + 1])) for i in range(0, len(edge_tokens), 3)]
    first, second = (int(x) for x in tokens[q + 1:r])
    return edges, (first, second), int(tokens[r + 1])


def graph_fields_from_question(question: str, source: str = "<memory>", where: str = "record 0") -> dict:
    """Graph fields for a bare word question (``generate --question``): nodes numbered in a topological
    order, parents before children, people first and the asked person first of all, as the generator
    numbers them."""
    body, ask = _split_question(question)
    if ask is None:
        raise DataError(source, where, "no final 'Is X a A or B?' sentence, and no graph fields "
                        f"({', '.join(GRAPH_FIELDS)}) to encode it with (data.encoding=graph)", "question")
    facts = [(m.group(1) or m.group(2), m.group(3)) for m in FACT_RE.finditer(body)]
    order: list[str] = []
    for parent, child in facts:
        order += [n for n in (parent, child) if n not in order]
    person, first, second = ask.groups()
    order += [n for n in (person, first, second) if n not in order]
    # the asked person first: in the generator's numbering it is node 0 or 1
    order.remove(person)
    order.insert(0, person)
    position = {n: i for i, n in enumerate(order)}
    layers = Graph([(position[p], position[c]) for p, c in facts], len(order)).layers()
    if layers is None:
        raise DataError(source, where, "the facts contain a cycle (data.encoding=graph)", "question")
    ranked = [order[i] for layer in layers for i in layer]
    index = {n: i for i, n in enumerate(ranked)}
    target = second if first not in index else first  # unknown without a proof; only the fields matter
    return {"idx_to_symbol": ranked, "edges": [[index[p], index[c]] for p, c in facts], "root": index[person],
            "target": index[target], "neg_target": index[second if target == first else first]}


ENCODINGS: dict[str, type[Encoding]] = {cls.name: cls for cls in (Encoding, GraphEncoding, GraphEdgesEncoding,
                                                                  RulesEncoding)}


def build_encoding(name: str, node_ids: int | None = None) -> Encoding:
    """The encoding ``data.encoding`` names; ``node_ids`` (``data.node_ids``) lets ``graph_edges`` refuse a
    problem with more nodes than the model has ids for (without it, no such check)."""
    if name not in ENCODINGS:
        raise ConfigError(f"config key 'data.encoding': unknown encoding {name!r} (choose from {', '.join(ENCODINGS)})",
                          "data.encoding")
    if name == GraphEdgesEncoding.name:
        return GraphEdgesEncoding(node_ids)
    return ENCODINGS[name]()


def run_encoding(data) -> Encoding:
    """The encoding a run's ``data`` config section names, with its ``data.node_ids``."""
    return build_encoding(data.encoding, data.node_ids)


__all__ = ["ENCODINGS", "Encoding", "GraphEdgesEncoding", "GraphEncoding", "ReadOutput", "RulesEncoding", "UNUSED_NODE",
           "augment_graph", "build_encoding", "edge_token", "graph_fields_from_question",
           "graph_stage_targets", "has_edge_tokens", "parse_graph_question", "run_encoding", "unmapped_mark", "write_graph_question"]
