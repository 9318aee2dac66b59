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
