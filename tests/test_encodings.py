"""The compact graph encoding (``data.encoding: graph``): round trips on the official file, the same graph
in both renderings, option order, decoding of model output, and ``latentcot eval`` answering in words."""

import json
import re

import pytest

from helpers import tiny_prosqa
from latentcot.cli import main
from latentcot.data.encodings import GraphEncoding, build_encoding, graph_fields_from_question, parse_graph_question
from latentcot.data.io import load_records, save_records
from latentcot.data.records import DataError, Record
from latentcot.evaluation import extract_answer

ENC = GraphEncoding()


def words_facts(question: str) -> list[tuple[str, str]]:
    """(parent, child) names of each fact, in question order, read with a regex of this test's own."""
    return [(a or b, c) for a, b, c in re.findall(r"(?:Every ([a-z]+)|([A-Z][a-z]+)) is a ([a-z]+)\.", question)]


@pytest.fixture(scope="module")
def official(request):
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("reference data not found")
    return load_records(SHARED_DATA / "prosqa_valid.json")


def test_round_trip_on_all_official_valid_records(official):
    assert len(official) == 300
    for i, record in enumerate(official):
        encoded = ENC.encode(record)
        assert ENC.decode(encoded).to_dict() == record.to_dict(), i


def test_both_renderings_describe_the_same_graph_in_the_same_order(official):
    for record in official:
        names = record.extra["idx_to_symbol"]
        encoded = ENC.encode(record)
        edges, options, root = parse_graph_question(encoded.question)
        # the same edges as the question's facts, in the question's order, and as the edges field
        assert [(names[p], names[c]) for p, c in edges] == words_facts(record.question)
        assert sorted(edges) == sorted(tuple(e) for e in record.extra["edges"])
        asked = re.search(r"Is (\w+) a (\w+) or (\w+)\?$", record.question).groups()
        assert names[root] == asked[0] and root == record.extra["root"]
        assert (names[options[0]], names[options[1]]) == asked[1:]  # option order kept
        assert {options[0], options[1]} == {record.extra["target"], record.extra["neg_target"]}
        # steps: one edge each, the path from the root to the answer
        pairs = [tuple(int(x) for x in s.split()) for s in encoded.steps]
        assert [(names[p], names[c]) for p, c in pairs] == [words_facts(s)[0] for s in record.steps]
        assert pairs[0][0] == root and pairs[-1][1] == int(encoded.answer) == record.extra["target"]


def test_the_true_option_comes_first_about_half_the_time(official):
    first = [parse_graph_question(ENC.encode(r).question)[1][0] == r.extra["target"] for r in official]
    assert 0.35 < sum(first) / len(first) < 0.65


def test_encoding_is_compact(official):
    from latentcot.tokenization import corpus, train_word_tokenizer

    encoded = ENC.encode_all(official)
    tok = train_word_tokenizer(corpus(encoded))
    words = train_word_tokenizer(corpus(official))
    compact = sum(len(tok(r.question)["input_ids"]) for r in encoded) / len(encoded)
    wordy = sum(len(words(r.question)["input_ids"]) for r in official) / len(official)
    assert compact < 130 and wordy > 1.8 * compact
    assert len(tok) < 50  # node ids, '|', Q, R, '###', newline and the base specials


def test_generated_records_round_trip_too():
    for record in tiny_prosqa(30, seed=4):
        assert ENC.decode(ENC.encode(record)).to_dict() == record.to_dict()


def test_model_output_is_read_back_in_the_files_words(official):
    record = official[0]  # Tom -> terpus -> brimpus -> lempus; options lempus, scrompus
    encoded = ENC.encode(record)
    ids = {name: i for i, name in enumerate(record.extra["idx_to_symbol"])}
    path = f" {ids['Tom']} {ids['terpus']}\n {ids['terpus']} {ids['brimpus']}\n {ids['brimpus']} {ids['lempus']}\n"
    text = ENC.decode_output(path + f"### {ids['lempus']}", encoded)
    assert text == "\n".join(record.steps) + "\n### Tom is a lempus."
    assert extract_answer(text) == record.answer
    wrong = ENC.decode_output(f"### {ids['scrompus']}", encoded)
    assert extract_answer(wrong) == "Tom is a scrompus." != record.answer
    # what is not an id of this graph, or no step, is marked and listed, never shown as a bare id
    n = len(record.extra["idx_to_symbol"])
    read = ENC.read_output(f"{path}### {n}", encoded)
    assert read.text == "\n".join(record.steps) + f"\n### <unmapped: {n}>" and read.unmapped == (str(n),)
    assert extract_answer(read.text) != record.answer
    read = ENC.read_output(f" 3 4 5\n {ids['Tom']} {n + 2}\n###", encoded)
    assert read.text == f"<unmapped: 3 4 5>\n<unmapped: {ids['Tom']} {n + 2}>\n###"
    assert read.unmapped == ("3 4 5", f"{ids['Tom']} {n + 2}")
    assert ENC.read_output(f"### {ids['lempus']}", encoded).unmapped == ()
    # Token Assorted's latent block is the method's own, kept as written; the steps after it are read
    from latentcot.tokenization import BEGIN_LATENT, END_LATENT, latent_code_token

    block = BEGIN_LATENT + latent_code_token(3) + latent_code_token(12) + END_LATENT
    read = ENC.read_output(f"{block}\n {ids['brimpus']} {ids['lempus']}\n### {ids['lempus']}", encoded)
    assert read.text == f"{block}\n{record.steps[-1]}\n### Tom is a lempus." and read.unmapped == ()
    assert ENC.read_output(f"{block} {ids['brimpus']} {ids['lempus']}\n###", encoded).unmapped == ()


def test_a_question_whose_person_or_option_is_in_no_fact_is_refused():
    for question, role in (("Every blicket is a dax. Tom is a blicket. Is Tom a dax or wug?", "option 'wug'"),
                           ("Every blicket is a dax. Tom is a blicket. Is Ann a dax or blicket?", "person 'Ann'")):
        with pytest.raises(DataError, match=f"--question: record 0: field 'question': the {role} appears in no "
                                            "fact of the question"):
            ENC.encode(Record(question, [], ""), "--question")
    ENC.encode(Record("Every blicket is a dax. Tom is a blicket. Every dax is a wug. Is Tom a dax or wug?", [], ""))


def test_a_bare_question_gets_graph_fields_in_topological_order():
    record = tiny_prosqa(1, seed=2)[0]
    fields = graph_fields_from_question(record.question)
    names, edges = fields["idx_to_symbol"], fields["edges"]
    assert sorted(names) == sorted(record.extra["idx_to_symbol"])
    assert all(p < c for p, c in edges)
    person = record.extra["idx_to_symbol"][record.extra["root"]]
    assert names[fields["root"]] == person
    bare = Record(record.question, [], "x")
    with pytest.raises(DataError, match="field 'answer'"):
        ENC.encode(bare)  # 'x' is no answer sentence
    encoded = ENC.encode(Record(record.question, [], f"{person} is a {names[-1]}."))
    assert ENC.decode(encoded).question == record.question
    assert ENC.encode(Record(record.question, [], "")).answer == ""  # generate --question: no answer yet


def test_bad_records_name_the_record_and_field():
    record = tiny_prosqa(1)[0]
    broken = Record("Every wumpus is a rompus.", [], record.answer)
    with pytest.raises(DataError, match=r"f.json: record 3: field 'question'.*data.encoding=graph"):
        ENC.encode(broken, "f.json", "record 3")
    bad_step = Record(record.question, ["Tom likes cats."], record.answer, dict(record.extra))
    with pytest.raises(DataError, match="field 'steps'"):
        ENC.encode(bad_step)
    with pytest.raises(ValueError, match="data.encoding"):
        build_encoding("symbols")


def test_eval_cli_converts_inside_and_answers_in_words(tmp_path, capsys):
    from helpers import tiny_config

    from latentcot.training import train

    records = tiny_prosqa(16, seed=1)
    cfg = tiny_config(tmp_path, "train.epochs=1", "data.encoding=graph", "method.name=cot",
                      "method.max_new_tokens=20", name="graph")
    trainer = train(cfg, train_records=records)
    capsys.readouterr()
    vocab = set(trainer.tokenizer.get_vocab())
    assert " 0" in {trainer.tokenizer.convert_tokens_to_string([t]) for t in vocab}
    assert not any("pus" in trainer.tokenizer.convert_tokens_to_string([t]) for t in vocab)
    valid = tiny_prosqa(5, seed=9)
    save_records(valid, tmp_path / "valid.json")
    out = tmp_path / "rows.jsonl"
    assert main(["eval", str(tmp_path / "graph"), "--data", str(tmp_path / "valid.json"), "--out", str(out),
                 "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and summary["accuracy"] == sum(r["correct"] for r in rows) / 5
    for row, record in zip(rows, valid):
        assert row["question"] == record.question and row["answer"] == record.answer
        assert row["generated"] == ENC.decode_output(row["generated_encoded"], ENC.encode(record))
        assert row["predicted"] == extract_answer(row["generated"])
        assert row["correct"] == (row["predicted"] == record.answer)


# -- rules (ProntoQA) ---------------------------------------------------------------------------------

ADJECTIVES = {"bright", "dull", "large", "small", "hot", "cold", "wooden", "metallic", "feisty", "fruity",
              "transparent", "opaque", "blue", "red", "sweet", "sour", "bitter", "spicy", "shy", "kind",
              "happy", "sad", "angry", "mean", "nervous", "aggressive", "loud", "melodic", "moderate", "rainy",
              "windy", "sunny", "snowy", "temperate", "luminous", "liquid", "brown", "orange", "fast", "slow",
              "floral", "discordant", "amenable", "earthy", "muffled", "overcast"}


def _solve_compact(question: str) -> str:
    """An independent reader of the compact form: forward chaining over 'subject predicate |' rules, where a
    negated property is 'not' glued to its adjective."""
    *clauses, query = [c.split() for c in question.split("|")]
    subtype, props, kinds = {}, {}, set()
    for clause in clauses:
        if clause[0] == "R":
            kinds.add(clause[1])
        elif clause[1].startswith("not") and clause[1][3:] in ADJECTIVES:
            props.setdefault(clause[0], []).append((clause[1][3:], True))
        else:
            subtype.setdefault(clause[0], []).append(clause[1])
            props.setdefault(clause[0], []).append((clause[1], False))
    frontier = list(kinds)
    while frontier:
        for parent in subtype.get(frontier.pop(), []):
            if parent not in kinds:
                kinds.add(parent)
                frontier.append(parent)
    _, word = query
    negation, adjective = (True, word[3:]) if word.startswith("not") and word[3:] in ADJECTIVES else (False, word)
    facts = {neg for kind in kinds for word, neg in props.get(kind, []) if word == adjective}
    (negated,) = facts
    return "True" if negated == negation else "False"


def test_rules_encoding_keeps_every_problem_decidable_and_decodes_gold_output_exactly():
    from latentcot.data.encodings import RulesEncoding
    from latentcot.data.prontoqa import generate

    encoding = RulesEncoding()
    for record in generate(300, seed=11):
        encoded = encoding.encode(record)
        assert encoded.question.count("|") == 25 and encoded.question.count(" R ") == 2
        assert _solve_compact(encoded.question) == record.answer
        assert len(encoded.steps) == len(record.steps) and encoded.answer == record.answer
        gold = "\n".join(s.strip() for s in encoded.steps) + "\n### " + encoded.answer
        assert encoding.decode_output(gold, encoded) == "\n".join(record.steps) + "\n### " + record.answer


def test_rules_encoding_folds_the_wordings_together_and_shortens_the_question():
    from latentcot.data.encodings import RulesEncoding
    from latentcot.data.prontoqa import generate
    from latentcot.tokenization import build_tokenizer

    encoding = RulesEncoding()
    tail = " Max is a wumpus. True or false: Max is not bright."
    forms = ["Every wumpus is a yumpus. Yumpuses are bright.", "Each wumpus is a yumpus. Each yumpus is bright.",
             "Wumpuses are yumpuses. Every yumpus is bright."]
    encoded = {encoding.encode(Record(form + tail, [], "False")).question for form in forms}
    assert encoded == {" wumpus yumpus | yumpus bright | R wumpus | Q notbright"}
    records = generate(200, seed=12)
    tokenizer = build_tokenizer("word", records + encoding.encode_all(records))
    words = sum(len(tokenizer(r.question)["input_ids"]) for r in records)
    compact = sum(len(tokenizer(r.question)["input_ids"]) for r in encoding.encode_all(records))
    assert compact < 0.75 * words


def test_rules_encoding_names_what_it_cannot_read():
    from latentcot.data.encodings import RulesEncoding

    with pytest.raises(DataError, match=r"f\.json: record 3: field 'question'.*True or false"):
        RulesEncoding().encode(Record("Every wumpus is a yumpus.", [], "True"), "f.json", "record 3")
    with pytest.raises(DataError, match=r"field 'steps'.*step 0"):
        RulesEncoding().encode(Record("Max is a wumpus. Every wumpus is bright. True or false: Max is bright.",
                                      ["Max flies."], "True"))
    # a query the rules cannot reach: its person has no fact, or its adjective is in no rule
    with pytest.raises(DataError, match=r"field 'question'.*no fact about Max"):
        RulesEncoding().encode(Record("Every wumpus is bright. True or false: Max is bright.", [], "True"))
    record = Record("Max is a wumpus. Every wumpus is bright. True or false: Max is bright.", [], "True")
    encoded = RulesEncoding().encode(record)
    assert RulesEncoding().read_output(" wumpus bright\n### True", encoded).unmapped == ()
    assert RulesEncoding().read_output(" bright\n### wumpus", encoded).unmapped == ("wumpus",)
    with pytest.raises(DataError, match=r"field 'question'.*'bright' appears in no rule"):
        RulesEncoding().encode(Record("Max is a wumpus. Every wumpus is dull. True or false: Max is bright.", [],
                                      "True"))


def test_a_rules_encoded_coconut_run_trains_and_evaluates_in_words(tmp_path, capsys):
    from helpers import tiny_config

    from latentcot.data.prontoqa import ProntoQAOptions, generate
    from latentcot.training import train

    records = generate(16, seed=1, options=ProntoQAOptions(hops=2))
    cfg = tiny_config(tmp_path, "train.epochs=2", "data.encoding=rules", "method.max_latent_stage=3",
                      "method.max_new_tokens=12", name="rules")
    train(cfg, train_records=records)
    save_records(generate(4, seed=9, options=ProntoQAOptions(hops=2)), tmp_path / "valid.json")
    out = tmp_path / "rows.jsonl"
    assert main(["eval", str(tmp_path / "rules"), "--data", str(tmp_path / "valid.json"), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and all(row["question"].endswith(".") and "True or false:" in row["question"] for row in rows)
    assert all("generated_encoded" in row for row in rows)  # the model's own compact text is kept too


def test_a_rules_encoded_vqvae_cuts_the_compact_traces_and_assorted_checks_the_encoding(tmp_path):
    """The VQ-VAE reads data.encoding like the LM: its codes cover the compact trace (one chunk of 16 tokens
    holds a 2-hop rules trace; the words need more), and an assorted LM in another encoding is refused."""
    pytest.importorskip("vector_quantize_pytorch")
    from helpers import tiny_config

    from latentcot.config import apply_overrides
    from latentcot.data.prontoqa import ProntoQAOptions, generate
    from latentcot.training import train
    from latentcot.vqvae import VQVAEConfig
    from latentcot.vqvae.io import load_vqvae, vqvae_encoding
    from latentcot.vqvae.train import train_vqvae

    records = generate(12, seed=1, options=ProntoQAOptions(hops=2))
    vq = tmp_path / "vq"
    base = ["model.d_model=32", "model.n_heads=2", "model.n_layers=1", "model.codebook_size=8",
            "model.chunk_len=16", "train.epochs=1", "train.progress=false", "train.eval_every=0"]
    train_vqvae(apply_overrides(VQVAEConfig(), [f"output_dir={vq}", "data.encoding=rules", *base]),
                train_records=records)
    assert vqvae_encoding(vq) == "rules"
    _, tokenizer = load_vqvae(vq)
    assert "Ġ|" in tokenizer.get_vocab()  # the vocabulary was built from the compact form

    common = ["method.name=assorted", f"method.vqvae={vq}", f"tokenizer.path={vq}", "method.max_new_tokens=12",
              "train.epochs=1"]
    trainer = train(tiny_config(tmp_path, *common, "data.encoding=rules", name="rules"), train_records=records)
    assert all(len(r.latent) == 1 for r in trainer.train_tokens)  # 3 short steps and their separators: one chunk
    with pytest.raises(ValueError, match="data.encoding.*'text'.*'rules'"):
        train(tiny_config(tmp_path, *common, name="words"), train_records=records)
