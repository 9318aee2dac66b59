import pytest

from latentcot.data.records import Record
from latentcot.tokenization import (
    BOT, EOS, EOT, PAD, PAUSE, THOUGHT, UNK, add_method_tokens, build_tokenizer, latent_code_token, load_tokenizer,
    record_text, train_bpe_tokenizer, train_word_tokenizer,
)

RECORDS = [
    Record("Every wumpus is a yumpus. Tom is a wumpus. Is Tom a yumpus or rempus?",
           ["Tom is a wumpus.", "Every wumpus is a yumpus."], "Tom is a yumpus."),
    Record("Every rempus is a zumpus. Max is a rempus. Is Max a zumpus or wumpus?",
           ["Max is a rempus.", "Every rempus is a zumpus."], "Max is a zumpus."),
]


def test_word_tokenizer_round_trips_text_exactly():
    tok = train_word_tokenizer(record_text(r) for r in RECORDS)
    for record in RECORDS:
        text = record_text(record) + EOS
        ids = tok(text)["input_ids"]
        assert tok.decode(ids) == text
        assert UNK not in tok.convert_ids_to_tokens(ids)
    # one token per word: short sequences are the point of the word-level tokenizer
    assert len(tok("Tom is a wumpus.")["input_ids"]) == 5
    assert tok.convert_tokens_to_ids([PAD, EOS, UNK]) == [0, 1, 2]


def test_word_tokenizer_maps_unseen_words_to_unk():
    tok = train_word_tokenizer(record_text(r) for r in RECORDS)
    assert tok.unk_token_id in tok("Tom is a blorpus.")["input_ids"]


def test_bpe_tokenizer_never_needs_unk():
    texts = ["Natalia sold 48 clips in April and half as many in May. <<48/2=24>> <<48+24=72>>"] * 20
    tok = train_bpe_tokenizer(texts, vocab_size=300, min_frequency=1)
    unseen = "Zebra-kazoo 12345 ?!"
    ids = tok(unseen)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == unseen


def test_method_tokens_added_once_and_saved_with_tokenizer(tmp_path):
    tok = build_tokenizer("word", RECORDS)
    size = len(tok)
    ids = add_method_tokens(tok, [BOT, EOT, THOUGHT])
    assert ids == list(range(size, size + 3))
    assert add_method_tokens(tok, [EOT, PAUSE]) == [ids[1], size + 3]
    assert len(tok) == size + 4
    # special tokens stay whole inside text
    text = f"Tom{BOT}{THOUGHT}{THOUGHT}{EOT} is"
    assert tok.convert_ids_to_tokens(tok(text)["input_ids"])[1:5] == [BOT, THOUGHT, THOUGHT, EOT]
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(str(tmp_path))
    assert len(again) == len(tok)
    assert again.convert_tokens_to_ids([BOT, EOT, THOUGHT, PAUSE]) == ids + [size + 3]
    assert again(record_text(RECORDS[0]))["input_ids"] == tok(record_text(RECORDS[0]))["input_ids"]
    assert again.pad_token == PAD and again.eos_token == EOS


def test_latent_code_names_are_distinct_tokens():
    tok = build_tokenizer("word", RECORDS)
    codes = [latent_code_token(i) for i in range(4)]
    ids = add_method_tokens(tok, codes)
    assert len(set(ids)) == 4
    assert tok.convert_ids_to_tokens(tok("".join(codes))["input_ids"]) == codes


def test_pretrained_kind_without_model_is_an_error():
    with pytest.raises(ValueError, match="tokenizer.kind=pretrained"):
        build_tokenizer("pretrained", RECORDS)
