"""Token Assorted: the m-replacement renders the right tokens and loss mask; the whole pipeline (VQ-VAE,
assorted LM, generation) runs on a tiny problem set."""

import dataclasses
import random

import pytest

from latentcot.config import MethodConfig
from latentcot.data.records import Record
from latentcot.methods import IGNORE_INDEX, build_method, tokenize_record
from latentcot.tokenization import (BEGIN_LATENT, END_LATENT, METHOD_TOKENS, add_method_tokens, latent_code_token,
                                    record_text, train_word_tokenizer)

RECORD = Record("Every a is a b. Every b is a c. Every c is a d. Tom is a a. Is Tom a d or e?",
                ["Tom is a a.", "Every a is a b.", "Every b is a c.", "Every c is a d."], "Tom is a d.")
K = 5


@pytest.fixture(scope="module")
def tok():
    tokenizer = train_word_tokenizer([record_text(RECORD)])
    add_method_tokens(tokenizer, METHOD_TOKENS + tuple(latent_code_token(i) for i in range(K)))
    return tokenizer


def method_with_codes(tok, chunk_len, codes_per_chunk, **cfg):
    method = build_method(MethodConfig(name="assorted", **cfg), tok)
    # what prepare() takes from the VQ-VAE, set by hand so rendering is checked on its own
    method.chunk_len, method.codes_per_chunk = chunk_len, codes_per_chunk
    record = tokenize_record(RECORD, tok)
    n_chunks = -(-sum(len(s) for s in record.steps) // chunk_len)
    codes = tuple(i % K for i in range(n_chunks * codes_per_chunk))
    return method, dataclasses.replace(record, latent=codes)


@pytest.mark.parametrize("chunk_len,codes_per_chunk", [(6, 1), (8, 2)])
def test_first_m_chunks_become_codes(tok, chunk_len, codes_per_chunk):
    method, record = method_with_codes(tok, chunk_len, codes_per_chunk)
    steps = [t for s in record.steps for t in s]
    n_chunks = method.n_chunks(record)
    assert n_chunks == -(-len(steps) // chunk_len) > 2
    for m in range(n_chunks + 1):
        ex = method.render(record, m)
        codes = record.latent[:m * codes_per_chunk]
        block = ([tok.convert_tokens_to_ids(BEGIN_LATENT)] + [tok.convert_tokens_to_ids(latent_code_token(c))
                 for c in codes] + [tok.convert_tokens_to_ids(END_LATENT)]) if m else []
        expected = list(record.question) + block + steps[m * chunk_len:] + list(record.answer)
        assert ex.input_ids == expected
        # loss on the latent block (markers included: the model must write them), the text left and the answer
        q = len(record.question)
        assert ex.labels[:q] == [IGNORE_INDEX] * q
        assert ex.labels[q:] == expected[q:]
    # every chunk replaced: no text step left
    assert tok.decode(method.render(record, n_chunks).input_ids).count("Every a is a b.") == 1  # only in the question


def test_m_is_drawn_per_problem(tok):
    method, record = method_with_codes(tok, 6, 1)
    n = method.n_chunks(record)
    drawn = {method.draw_m(n, random.Random(s)) for s in range(200)}
    assert drawn == set(range(n + 1))  # 0 included
    method, record = method_with_codes(tok, 6, 1, latent_chunks=[0, 2, 99])
    assert {method.draw_m(n, random.Random(s)) for s in range(200)} == {0, 2, n}  # capped at all chunks
    ex = method.train_example(record, 0, random.Random(3))
    assert ex.input_ids[:len(record.question)] == list(record.question)


def test_output_splits_into_codes_and_text(tok):
    method, record = method_with_codes(tok, 6, 1)
    ids = method.render(record, 2).input_ids[len(record.question):]
    codes, text = method.split_output(ids)
    assert codes == list(record.latent[:2])
    assert BEGIN_LATENT in tok.decode(text)


def test_needs_latent_tokens_and_codes(tok):
    with pytest.raises(ValueError, match="latent"):
        build_method(MethodConfig(name="assorted"), _bare_with_markers())
    method = build_method(MethodConfig(name="assorted"), tok)
    with pytest.raises(RuntimeError, match="VQ-VAE codes"):
        method.train_example(tokenize_record(RECORD, tok), 0, random.Random(0))


def _bare_with_markers():
    tokenizer = train_word_tokenizer([record_text(RECORD)])
    add_method_tokens(tokenizer, METHOD_TOKENS)
    return tokenizer


def test_output_summary_measures_latent_use(tok):
    method = build_method(MethodConfig(name="assorted"), tok)
    texts = ["<bol><latent_1><latent_3><eol>Every c is a d.\n### Tom is a d.", "### Tom is a d.",
             " <bol><latent_1><eol>### Tom is a e."]
    stats = method.output_summary(texts)
    assert stats == {"share_starting_latent": 2 / 3, "mean_latent_codes": 1.0, "distinct_codes_written": 2}


def test_pipeline_from_scratch_and_from_a_cot_run(tmp_path):
    """VQ-VAE, then an assorted LM from scratch (sharing the VQ-VAE's tokenizer) and one continued from a cot
    run; the trained models generate, and the training examples carry the VQ-VAE's codes."""
    pytest.importorskip("vector_quantize_pytorch")
    from helpers import tiny_config, tiny_prosqa

    from latentcot.config import apply_overrides
    from latentcot.evaluation import evaluate
    from latentcot.inference import load_run
    from latentcot.training import Trainer, train
    from latentcot.vqvae import VQVAEConfig
    from latentcot.vqvae.train import train_vqvae

    records, valid = tiny_prosqa(12), tiny_prosqa(3, seed=4)
    vq_cfg = apply_overrides(VQVAEConfig(), [
        f"output_dir={tmp_path / 'vq'}", "model.d_model=32", "model.n_heads=2", "model.n_layers=1",
        "model.codebook_size=8", "model.chunk_len=6", "train.epochs=1", "train.progress=false",
        "train.eval_every=0"])
    train_vqvae(vq_cfg, train_records=records)

    common = ["method.name=assorted", f"method.vqvae={tmp_path / 'vq'}", "method.max_new_tokens=30", "train.epochs=1"]
    scratch = Trainer(tiny_config(tmp_path, *common, f"tokenizer.path={tmp_path / 'vq'}", name="scratch"),
                      train_records=records)
    assert [f"<latent_{i}>" in scratch.tokenizer.get_vocab() for i in (0, 7, 8)] == [True, True, False]
    assert all(len(r.latent) == scratch.method.n_chunks(r) for r in scratch.train_tokens)
    latent_ids = set(scratch.method.latent_ids)
    examples = scratch.epoch_examples(0)
    assert any(set(e.input_ids) & latent_ids for e in examples) and any(not set(e.input_ids) & latent_ids
                                                                        for e in examples)
    scratch.fit()

    # from a cot run whose word vocabulary was trained on the same problems: the ids agree
    train(tiny_config(tmp_path, "method.name=cot", name="cot"), train_records=records)
    continued = train(tiny_config(tmp_path, *common, f"train.init_from={tmp_path / 'cot'}", name="continued"),
                      train_records=records)
    assert continued.state.epoch == 1
    # a cot run with another vocabulary: chunks would be cut from other ids, so it is refused
    train(tiny_config(tmp_path, "method.name=cot", name="other"), train_records=tiny_prosqa(12, seed=9))
    with pytest.raises(ValueError, match="tokenizer.path"):
        train(tiny_config(tmp_path, *common, f"train.init_from={tmp_path / 'other'}", name="bad"),
              train_records=records)

    _, model, tokenizer, method = load_run(tmp_path / "scratch")
    result = evaluate(model, tokenizer, method, valid, batch_size=2)
    assert result.n_problems == 3 and "share_starting_latent" in result.summary()

    # an exported assorted model carries its VQ-VAE: it evaluates the same with the VQ-VAE run gone
    from latentcot.training.export import export_model

    export_model(tmp_path / "scratch", tmp_path / "export")
    from latentcot.vqvae.io import vqvae_encoding

    assert (tmp_path / "export" / "vqvae" / "config.yaml").exists()  # the encoding travels with the codes
    assert vqvae_encoding(tmp_path / "export" / "vqvae") == "text"
    assert str(tmp_path) not in (tmp_path / "export" / "vqvae" / "config.yaml").read_text()  # no machine paths
    (tmp_path / "vq").rename(tmp_path / "vq_gone")
    _, model, tokenizer, method = load_run(tmp_path / "export")
    again = evaluate(model, tokenizer, method, valid, batch_size=2)
    assert [r["generated"] for r in again.rows] == [r["generated"] for r in result.rows]
    # reading codes back as text loads the bundled VQ-VAE (the original run is gone)
    assert all(isinstance(method.latent_text(r["generated"], r["question"]), str) for r in again.rows)
