"""Tokenizers: trained on a data set with HuggingFace ``tokenizers``, or a pretrained model's own.

All tokenizers come out as ``transformers.PreTrainedTokenizerFast`` so they are saved beside the model
with ``save_pretrained`` and reloaded with ``AutoTokenizer.from_pretrained``. The special tokens the
methods need are named here and added through :func:`add_method_tokens`, the one place that grows a
vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from .data.records import Record
from .errors import ConfigError, is_load_failure

PAD = "<pad>"
EOS = "<eos>"
UNK = "<unk>"
BASE_SPECIAL_TOKENS = (PAD, EOS, UNK)

# Markers and placeholders used by the methods; added to a vocabulary only when a method asks.
BOT = "<bot>"  # begin of continuous thoughts (Coconut)
EOT = "<eot>"  # end of continuous thoughts (Coconut)
THOUGHT = "<thought>"  # placeholder position that a continuous thought overwrites
PAUSE = "<pause>"  # pause token (Goyal et al. 2023) and Coconut's "pause as thought"
BEGIN_LATENT = "<bol>"  # Token Assorted: begin of discrete latent codes
END_LATENT = "<eol>"  # Token Assorted: end of discrete latent codes
METHOD_TOKENS = (BOT, EOT, THOUGHT, PAUSE, BEGIN_LATENT, END_LATENT)

ANSWER_PREFIX = "### "


def latent_code_token(index: int) -> str:
    """Name of the vocabulary item for VQ-VAE code ``index`` (Token Assorted)."""
    return f"<latent_{index}>"


def record_text(record: Record) -> str:
    """The plain cot rendering (question, steps, answer), which is what tokenizers are trained on."""
    lines = [record.question, *record.steps, ANSWER_PREFIX + record.answer]
    return "\n".join(lines)


def corpus(records: Iterable[Record]) -> Iterator[str]:
    for record in records:
        yield record_text(record)


def _byte_level_pretokenizer() -> pre_tokenizers.PreTokenizer:
    # Byte-level pieces keep the leading space inside the token, so decode() restores the text exactly
    # ("Tom is a lempus." round-trips), which exact-match evaluation depends on.
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def _wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK,
        clean_up_tokenization_spaces=False,
    )


def train_word_tokenizer(texts: Iterable[str], min_frequency: int = 1) -> PreTrainedTokenizerFast:
    """One id per (space-prefixed) word or punctuation run: short sequences for synthetic tasks."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = _byte_level_pretokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.WordLevelTrainer(special_tokens=list(BASE_SPECIAL_TOKENS), min_frequency=min_frequency)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return _wrap(tokenizer)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style), for natural-language data such as GSM8k; never emits <unk>."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = _byte_level_pretokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(BASE_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return _wrap(tokenizer)


def unknown_words(tokenizer: PreTrainedTokenizerBase, texts: Iterable[str]) -> dict[str, int]:
    """Words the tokenizer can only read as its unknown token, with how many texts hold each.

    A word-level tokenizer maps every word it was not trained on to ``[UNK]``; a byte-level BPE one has
    no unknown words, and neither does a tokenizer without an unknown token.
    """
    unk = tokenizer.unk_token
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if unk is None or backend is None:
        return {}
    found: dict[str, int] = {}
    for text in texts:
        encoding = backend.encode(text, add_special_tokens=False)
        words = {text[start:end].strip() for token, (start, end) in zip(encoding.tokens, encoding.offsets) if token == unk}
        for word in words:
            found[word] = found.get(word, 0) + 1
    return found


def tokenizer_location(name_or_path: str) -> str:
    """A tokenizer directory or hub id as given, or for a run directory (an LM's or a VQ-VAE's, with
    ``checkpoints/``) the newest checkpoint, which holds the run's tokenizer."""
    path = Path(name_or_path)
    if path.is_dir() and not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        from .runs import latest_checkpoint

        latest = latest_checkpoint(path)
        if latest is not None:
            return str(latest)
    return name_or_path


def load_tokenizer(name_or_path: str, **kwargs) -> PreTrainedTokenizerBase:
    """A saved tokenizer directory, run directory or hub id; gives it a pad token if it has none
    (needed for batching)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_location(name_or_path), **kwargs)
    ensure_pad_token(tokenizer)
    return tokenizer


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError("tokenizer has neither a pad nor an end-of-sequence token")
        # Padding positions are masked out of attention and loss, so reusing EOS is safe.
        tokenizer.pad_token = tokenizer.eos_token


def add_method_tokens(tokenizer: PreTrainedTokenizerBase, tokens: Sequence[str]) -> list[int]:
    """Add special tokens (idempotent) and return their ids in the order given."""
    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


def build_tokenizer(kind: str, records: Sequence[Record] = (), *, vocab_size: int = 8000,
                    min_frequency: int = 1, path: str = "") -> PreTrainedTokenizerBase:
    """The tokenizer a config asks for (``TokenizerConfig.kind``)."""
    if path:
        try:
            return load_tokenizer(path)
        except Exception as err:
            if not is_load_failure(err):
                raise
            first_line = (str(err).strip() or type(err).__name__).splitlines()[0]
            raise ConfigError(f"config key 'tokenizer.path': {path}: the tokenizer does not load: {first_line}",
                              "tokenizer.path") from err
    if kind == "word":
        return train_word_tokenizer(corpus(records), min_frequency=min_frequency)
    if kind == "bpe":
        return train_bpe_tokenizer(corpus(records), vocab_size=vocab_size, min_frequency=max(min_frequency, 1))
    if kind == "pretrained":
        raise ConfigError("tokenizer.kind=pretrained takes the model's tokenizer: set model.source to "
                          "'pretrained' or 'smollm2', or give tokenizer.path", "tokenizer.kind")
    raise ConfigError(f"unknown tokenizer kind {kind!r}; expected word, bpe or pretrained", "tokenizer.kind")


# --------------------------------------------------------------------------- problems as token pieces


@dataclass(frozen=True)
class TokenizedRecord:
    """A problem cut into token pieces once, so each epoch's rendering is list concatenation.

    ``question`` ends with the newline that separates it from what follows, each step ends with its
    newline, and ``answer`` is ``"### answer"`` plus the end-of-sequence token.
    """

    question: tuple[int, ...]
    steps: tuple[tuple[int, ...], ...]
    answer: tuple[int, ...]
    # Token Assorted: the VQ-VAE codes of the steps, chunk after chunk (set by Method.prepare)
    latent: tuple[int, ...] = ()
    # per stage k, the candidate labels of Coconut's frontier stage target (method.stage_target=frontier),
    # each tokenized like ``answer``; from the record's ``stage_targets`` field (graph encoding)
    stage_targets: tuple[tuple[tuple[int, ...], ...], ...] = ()
    # per hop k = 1, 2, ..., the token ids of thought k's target set (method.thought_targets), one token a
    # member; from the record's ``thought_targets`` field (latentcot.data.targets)
    thought_targets: tuple[tuple[int, ...], ...] = ()


def tokenize_record(record: Record, tokenizer) -> TokenizedRecord:
    return tokenize_records([record], tokenizer)[0]


def tokenize_records(records: Sequence[Record], tokenizer, chunk: int = 20_000) -> list[TokenizedRecord]:
    """Each record's pieces, tokenized separately (a piece's tokens never merge with its neighbour's).

    The pieces of many records go to the tokenizer in one batched call: one call per piece costs
    about 100 microseconds of Python, minutes for a generated set of 100k problems.
    """
    out: list[TokenizedRecord] = []
    for lo in range(0, len(records), chunk):
        part = records[lo:lo + chunk]
        texts = []
        for record in part:
            texts.append(record.question + "\n")
            texts.extend(step + "\n" for step in record.steps)
            texts.append(ANSWER_PREFIX + record.answer)
            texts.extend(ANSWER_PREFIX + c for stage in record.extra.get("stage_targets", ()) for c in stage)
        ids = iter(tuple(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"])
        # thought targets repeat a few node or concept words thousands of times: each distinct one once
        target_texts = sorted({t for record in part for hop in record.extra.get("thought_targets", ()) for t in hop})
        target_id = {text: _one_token(tuple(x), text, tokenizer) for text, x in zip(
            target_texts, tokenizer(target_texts, add_special_tokens=False)["input_ids"] if target_texts else [])}
        eos = (tokenizer.eos_token_id,)
        for record in part:
            question = next(ids)
            steps = tuple(next(ids) for _ in record.steps)
            answer = next(ids) + eos
            stage_targets = tuple(tuple(next(ids) + eos for _ in stage)
                                  for stage in record.extra.get("stage_targets", ()))
            thought_targets = tuple(tuple(target_id[text] for text in hop)
                                    for hop in record.extra.get("thought_targets", ()))
            out.append(TokenizedRecord(question=question, steps=steps, answer=answer, stage_targets=stage_targets,
                                       thought_targets=thought_targets))
    return out


def _one_token(ids: tuple[int, ...], text: str, tokenizer) -> int:
    """The single id of a thought target's text; a target that is not one token cannot be a distribution
    over the LM head's vocabulary."""
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ConfigError(f"method.thought_targets: the target {text!r} is not one known token of the vocabulary "
                          f"(it tokenizes to {list(ids)})", "method.thought_targets")
    return ids[0]
