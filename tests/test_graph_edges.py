"""``data.encoding=graph_edges``: one token an edge, embedded as source[s] + destination[t].

Round trips of the encoding (generated and official records), one token id per edge, the hook's embedding
against a by-hand sum, relabelling into 0..N-1, the too-many-nodes error, and a tiny run that saves,
resumes, evaluates and exports to a model plain transformers loads with the same logits."""

import json
import random
import re

import pytest
import torch

from helpers import keep_rms_norms_in_float64, tiny_model, tiny_prosqa
from latentcot.data.encodings import (
    GraphEdgesEncoding, GraphEncoding, augment_graph, build_encoding, graph_stage_targets, parse_graph_question,
)
from latentcot.data.io import load_records, save_records
from latentcot.data.records import DataError
from latentcot.models import load_checkpoint_model, save_model
from latentcot.models.pair_embedding import (
    CONFIG_KEY, MODULE_NAME, add_pair_tokens, hook_count, materialise_pair_embedding, pair_embedding,
    prepare_pair_model,
)
from latentcot.tokenization import METHOD_TOKENS, add_method_tokens, corpus, train_word_tokenizer

N = 12  # node ids of the tiny tests (the generated graphs have at most 10 nodes)
ENC = GraphEdgesEncoding(N)
GRAPH = GraphEncoding()


@pytest.fixture(scope="module")
def official():
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("reference data not found")
    return load_records(SHARED_DATA / "prosqa_valid.json")


def pairs_of(question: str) -> list[tuple[int, int]]:
    """(src, dst) of each edge token, read with a regex of this test's own."""
    return [(int(a), int(b)) for a, b in re.findall(r"<e(\d+)_(\d+)>", question)]


def check_round_trip(records, enc):
    for i, record in enumerate(records):
        encoded = enc.encode(record)
        graph = GRAPH.encode(record)
        assert enc.decode(encoded).to_dict() == record.to_dict(), i
        # the same edges, options, root, steps and answer as the graph encoding, each edge one token
        assert parse_graph_question(encoded.question) == parse_graph_question(graph.question)
        assert pairs_of(encoded.question) == parse_graph_question(graph.question)[0]
        assert "|" not in encoded.question and encoded.question.startswith(" <e")
        assert encoded.question.split(" Q ")[1] == graph.question.split(" Q ")[1]
        assert (encoded.steps, encoded.answer) == (graph.steps, graph.answer)
        assert graph_stage_targets(encoded) == graph_stage_targets(graph)


def test_round_trip_on_generated_records():
    check_round_trip(tiny_prosqa(30, seed=4), ENC)


def test_round_trip_on_all_official_valid_records(official):
    check_round_trip(official, GraphEdgesEncoding(32))
    assert build_encoding("graph_edges", 32).name == "graph_edges"


def test_parse_reads_both_forms_spaced_or_glued():
    assert parse_graph_question(" 2 5 | 0 2 | Q 5 3 R 0") == ([(2, 5), (0, 2)], (5, 3), 0)
    assert parse_graph_question(" <e2_5> <e0_2> Q 5 3 R 0") == ([(2, 5), (0, 2)], (5, 3), 0)
    assert parse_graph_question("<e2_5><e0_2> Q 5 3 R 0") == ([(2, 5), (0, 2)], (5, 3), 0)  # as decoded


def test_a_graph_with_more_nodes_than_node_ids_is_one_clear_error(tmp_path):
    record = tiny_prosqa(1)[0]
    n = len(record.extra["idx_to_symbol"])
    with pytest.raises(DataError) as err:
        GraphEdgesEncoding(n - 1).encode(record, "problems.json", "record 3")
    message = str(err.value)
    assert "problems.json" in message and "record 3" in message and "data.node_ids" in message
    assert str(n) in message and len(message.splitlines()) == 1
    GraphEdgesEncoding(n).encode(record)  # exactly enough is fine

    from latentcot.config import Config, apply_overrides
    from latentcot.training import Trainer

    save_records(tiny_prosqa(4), tmp_path / "train.json")
    cfg = apply_overrides(Config(), [f"output_dir={tmp_path / 'run'}", f"data.train={tmp_path / 'train.json'}",
                                     "data.encoding=graph_edges", "data.node_ids=4", "model.preset=tiny"])
    with pytest.raises(DataError, match=r"train\.json: record 0: .*data\.node_ids"):
        Trainer(cfg)


def tokenizer_for(records, nodes=N):
    enc = GraphEdgesEncoding(nodes)
    encoded = enc.encode_all(records)
    tok = train_word_tokenizer(corpus(enc.tokenizer_records(encoded)))
    add_method_tokens(tok, METHOD_TOKENS)
    return tok, encoded


def test_one_token_id_per_edge_and_every_node_id_a_word(tmp_path):
    tok, encoded = tokenizer_for(tiny_prosqa(8))
    vocab = tok.get_vocab()
    assert not any(re.match(r"<e\d", w) or w in ("e", "_", "Ġ<") for w in vocab)  # no pieces of pair tokens learnt
    first = add_pair_tokens(tok, N)
    assert add_pair_tokens(tok, N) == first  # idempotent
    tok.save_pretrained(tmp_path / "tok")
    from latentcot.tokenization import load_tokenizer

    for t in (tok, load_tokenizer(str(tmp_path / "tok"))):
        for i in range(N):  # every id, even those no training record uses, is one ordinary word token
            ids = t(f" {i}", add_special_tokens=False)["input_ids"]
            assert len(ids) == 1 and ids[0] != t.unk_token_id and t.convert_ids_to_tokens(ids) == [f"Ġ{i}"]
        for record in encoded:
            ids = t(record.question + "\n", add_special_tokens=False)["input_ids"]
            edges, options, root = parse_graph_question(record.question)
            assert ids[:len(edges)] == [first + s * N + d for s, d in edges]
            assert t.convert_ids_to_tokens(ids[len(edges):]) == ["ĠQ", f"Ġ{options[0]}", f"Ġ{options[1]}", "ĠR",
                                                                  f"Ġ{root}", "Ċ"]
            # steps and the answer read back as written
            for text in (*record.steps, "### " + record.answer):
                assert t.decode(t(text, add_special_tokens=False)["input_ids"]) == text
    with pytest.raises(ValueError, match="data.node_ids"):
        add_pair_tokens(tok, N + 1)  # a tokenizer holds one block of pair tokens


def pair_model(dtype="float64", arch="gpt2", records=None):
    records = records or tiny_prosqa(8)
    enc = GraphEdgesEncoding(N)
    encoded = enc.encode_all(records)
    model, tok = tiny_model(enc.tokenizer_records(encoded), METHOD_TOKENS, arch=arch, dtype=dtype)
    prepare_pair_model(model, tok, N)
    return model, tok, encoded


def batch_of(tok, question):
    return torch.tensor([tok(question + "\n", add_special_tokens=False)["input_ids"]])


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_hook_embeds_a_pair_as_source_plus_destination(arch):
    model, tok, encoded = pair_model(arch=arch)
    module = pair_embedding(model)
    assert hook_count(model) == 1
    ids = batch_of(tok, encoded[0].question)
    embedded = model.get_input_embeddings()(ids)[0]
    edges, _, _ = parse_graph_question(encoded[0].question)
    table = model.get_input_embeddings().weight
    for j, (s, d) in enumerate(edges):
        assert torch.equal(embedded[j], module.source.weight[s] + module.destination.weight[d])
    for j in range(len(edges), ids.shape[1]):
        assert torch.equal(embedded[j], table[ids[0, j]])
    # gradients reach both tables, at the rows the edges use and nowhere else
    model.zero_grad()
    model(ids).logits.sum().backward()
    used_s, used_d = {s for s, _ in edges}, {d for _, d in edges}
    for grad, used in ((module.source.weight.grad, used_s), (module.destination.weight.grad, used_d)):
        nonzero = {i for i in range(N) if grad[i].abs().sum() > 0}
        assert nonzero == used
    # preparing again (a resumed run) and resizing the embeddings keep exactly one hook
    prepare_pair_model(model, tok, N)
    model.resize_token_embeddings(len(tok) + 3, mean_resizing=False)
    module.install(model)
    assert hook_count(model) == 1 and pair_embedding(model) is module
    assert torch.equal(model.get_input_embeddings()(ids)[0], embedded)


def test_the_hook_works_in_bfloat16_and_under_autocast():
    model, tok, encoded = pair_model(dtype="float32")
    ids = batch_of(tok, encoded[0].question)
    module = pair_embedding(model)
    (s, d), *_ = parse_graph_question(encoded[0].question)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits.float()).all()
    model.to(torch.bfloat16)
    assert module.source.weight.dtype == torch.bfloat16
    embedded = model.get_input_embeddings()(ids)[0]
    assert embedded.dtype == torch.bfloat16
    assert torch.equal(embedded[0], module.source.weight[s] + module.destination.weight[d])


def test_checkpoint_reload_and_export_give_the_same_logits(tmp_path):
    model, tok, encoded = pair_model()
    ids = batch_of(tok, encoded[1].question)
    with torch.no_grad():
        expected = model(ids).logits
    save_model(model, tok, tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())[CONFIG_KEY]["nodes"] == N
    loaded, _ = load_checkpoint_model(tmp_path / "ckpt", "float64")
    assert hook_count(loaded) == 1 and pair_embedding(loaded) is not None
    with torch.no_grad():
        # float64: a reloaded model may round differently in the last bit, nowhere near 1e-12
        assert torch.allclose(loaded(ids).logits, expected, atol=1e-12, rtol=0)
        materialise_pair_embedding(loaded)
        assert hook_count(loaded) == 0 and pair_embedding(loaded) is None
        assert not hasattr(loaded.config, CONFIG_KEY) and not loaded.config.tie_word_embeddings
        assert torch.allclose(loaded(ids).logits, expected, atol=1e-12, rtol=0)


def test_relabelling_draws_ids_below_node_ids_and_still_decodes():
    records = tiny_prosqa(6, seed=2)
    encoded = ENC.encode_all(records)
    rng = random.Random(0)
    seen = set()
    for record, enc in zip(records, encoded):
        own = len(enc.extra["idx_to_symbol"])
        for _ in range(20):
            aug = augment_graph(enc, rng, shuffle=False, relabel=True, node_ids=N)
            edges, options, root = parse_graph_question(aug.question)
            ids = {x for e in edges for x in e} | set(options) | {root, int(aug.answer)}
            ids |= {int(x) for step in aug.steps for x in step.split()}
            assert max(ids) < N and "<e" in aug.question and "|" not in aug.question
            seen |= ids
            assert len(aug.extra["idx_to_symbol"]) == N
            assert sum(1 for name in aug.extra["idx_to_symbol"] if name) == own
            # the same problem in the same words
            assert ENC.decode(aug).question == record.question and ENC.decode(aug).steps == record.steps
            generated = "".join(step + "\n" for step in aug.steps) + "### " + aug.answer
            read = ENC.read_output(generated, aug)
            assert read.unmapped == () and read.text == "\n".join(record.steps) + "\n### " + record.answer
            # an id no node of this problem holds maps to nothing
            unused = aug.extra["idx_to_symbol"].index("")
            assert ENC.read_output(f"### {unused}", aug).unmapped == (str(unused),)
            assert aug.answer in graph_stage_targets(aug)[-1]
        shuffled = augment_graph(enc, rng, shuffle=True, relabel=True, node_ids=N)
        assert ENC.decode(shuffled).answer == record.answer
    assert seen == set(range(N))  # ids beyond every problem's own count are drawn
    with pytest.raises(ValueError, match="data.node_ids"):
        augment_graph(encoded[0], rng, relabel=True, node_ids=3)


# --------------------------------------------------------------------------- a tiny run


def run_config(tmp_path, name, *overrides):
    from latentcot.config import Config, apply_overrides

    # Coconut's keys as a base: a run that chooses another method drops the ones it does not read
    coconut = apply_overrides(Config(), ["method.name=coconut", "method.epochs_per_stage=1",
                                         "method.max_latent_stage=2"])
    return apply_overrides(coconut, [
        f"output_dir={tmp_path / name}", "model.preset=tiny", "model.n_positions=256", "train.batch_size=8",
        "train.lr=3e-3", "train.progress=false", "train.eval_every=0", "seed=0", "data.encoding=graph_edges",
        f"data.node_ids={RUN_N}", "data.shuffle_graph=true", "method.max_new_tokens=12", *overrides])


RUN_N = 32  # the runs read official problems (up to 28 nodes) too


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["cot", "coconut"])
def test_a_run_trains_resumes_evaluates_and_exports(tmp_path, method, capsys, official):
    from transformers import AutoModelForCausalLM

    from latentcot.cli import main
    from latentcot.runs import list_checkpoints
    from latentcot.training import Trainer, train

    records = tiny_prosqa(16, seed=1)
    full = train(run_config(tmp_path, "full", "train.epochs=2", f"method.name={method}"), train_records=records)
    assert full.cfg.data.relabelling()
    module = pair_embedding(full.model)
    assert module is not None and module.nodes == RUN_N and hook_count(full.model) == 1

    def stop_after_first(trainer, epoch):
        if epoch == 0:
            raise Interrupt

    cfg = run_config(tmp_path, "cut", "train.epochs=2", f"method.name={method}")
    with pytest.raises(Interrupt):
        train(cfg, train_records=records, on_epoch_end=stop_after_first)
    assert [p.name for p in list_checkpoints(cfg.output_dir)] == ["epoch_001"]
    resumed = Trainer(cfg, train_records=records)
    assert resumed.state.epoch == 1 and hook_count(resumed.model) == 1
    resumed.fit()
    expected, got = full.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == got.keys() and f"{MODULE_NAME}.source.weight" in got
    for key in expected:
        assert torch.equal(expected[key], got[key]), key

    # eval and generate read the official file's words through the encoding and answer in them
    run = str(tmp_path / "full")
    assert main(["eval", run, "--data", str(official_path()), "--max-problems", "6", "--batch-size", "3",
                 "--out", str(tmp_path / "rows.jsonl")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n_problems"] == 6
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert all("<e" not in row["generated"] for row in rows)
    assert main(["generate", run, "--question", official[0].question]) == 0
    assert "generated tokens" in capsys.readouterr().err  # a barely trained model: what it writes is noise

    # the export is a plain transformers model with the run's logits
    out = tmp_path / "export"
    assert main(["export", run, "--out", str(out)]) == 0
    assert CONFIG_KEY not in json.loads((out / "config.json").read_text())
    trained, tok = load_checkpoint_model(list_checkpoints(run)[-1], "float32")
    plain = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert pair_embedding(plain) is None and hook_count(plain) == 0
    prompt = build_encoding("graph_edges").encode(official[1]).question
    ids = batch_of(tok, prompt)
    assert (ids >= pair_embedding(trained).first_id).sum() > 20  # the prompt holds pair tokens
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, trained(ids).logits, atol=1e-5, rtol=0)
    # and latentcot evaluates the export as it does the run
    assert main(["eval", str(out), "--data", str(official_path()), "--max-problems", "6", "--batch-size", "3",
                 "--out", str(tmp_path / "rows_export.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] == summary["accuracy"]


def official_path():
    from conftest import SHARED_DATA

    return SHARED_DATA / "prosqa_valid.json"


def test_init_from_a_graph_edges_run_keeps_its_tables(tmp_path):
    from latentcot.runs import list_checkpoints
    from latentcot.training import Trainer, train

    records = tiny_prosqa(8, seed=1)
    train(run_config(tmp_path, "cot", "train.epochs=1", "method.name=cot", "method.halting=false"),
          train_records=records)
    source, _ = load_checkpoint_model(list_checkpoints(tmp_path / "cot")[-1], "float32")
    child = Trainer(run_config(tmp_path, "coconut", "train.epochs=1", "method.name=coconut", "method.halting=true",
                               f"train.init_from={tmp_path / 'cot'}"), train_records=records)
    module = pair_embedding(child.model)
    assert torch.equal(module.source.weight, pair_embedding(source).source.weight)
    assert hook_count(child.model) == 1
    # the pair embedding's parameters come before the halting head's, as when the checkpoint is loaded
    names = [name for name, _ in child.model.named_parameters()]
    assert names.index(f"{MODULE_NAME}.source.weight") < min(i for i, n in enumerate(names) if n.startswith("halting"))
    with pytest.raises(ValueError, match="data.node_ids"):
        Trainer(run_config(tmp_path, "wider", "train.epochs=1", "method.name=cot", f"data.node_ids={RUN_N + 2}",
                           f"train.init_from={tmp_path / 'cot'}"), train_records=records)


def test_exported_llama_gives_the_same_logits(tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok, encoded = pair_model(arch="llama")
    ids = batch_of(tok, encoded[2].question)
    with torch.no_grad():
        expected = model(ids).logits
    materialise_pair_embedding(model)
    model.save_pretrained(tmp_path / "plain")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "plain", dtype=torch.float64)
    keep_rms_norms_in_float64(plain)
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, expected, atol=1e-12, rtol=0)
