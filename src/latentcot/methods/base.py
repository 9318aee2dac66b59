"""The interface every method answers: how a problem is rendered for training at a given epoch, how
its prompt is rendered for inference, and where (if anywhere) continuous thoughts go.

The trainer and the inference code only see :class:`Example` objects; they never ask which method
they have. A method is a small class registered by name (``method.name`` in the config).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar, Sequence

from ..config import MethodConfig
from ..data.records import Record
from ..tokenization import ANSWER_PREFIX

IGNORE_INDEX = -100  # label value that gets no loss (PyTorch's cross-entropy default)


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
        ids = iter(tuple(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"])
        for record in part:
            question = next(ids)
            steps = tuple(next(ids) for _ in record.steps)
            out.append(TokenizedRecord(question=question, steps=steps,
                                       answer=next(ids) + (tokenizer.eos_token_id,)))
    return out


@dataclass
class Example:
    """Token ids ready for the model. ``labels`` is ``IGNORE_INDEX`` where there is no loss;
    ``thought_start`` is the index of the first continuous-thought position (-1 if none), which the
    collator aligns across a batch."""

    input_ids: list[int]
    labels: list[int]
    n_thoughts: int = 0
    thought_start: int = -1


def assemble(pieces: Sequence[tuple[Sequence[int], bool]], thought_id: int | None = None) -> Example:
    """Concatenate (ids, has_loss) pieces into an Example; counts ``thought_id`` positions."""
    input_ids: list[int] = []
    labels: list[int] = []
    for ids, has_loss in pieces:
        input_ids.extend(ids)
        labels.extend(ids if has_loss else [IGNORE_INDEX] * len(ids))
    n_thoughts, start = 0, -1
    if thought_id is not None:
        positions = [i for i, t in enumerate(input_ids) if t == thought_id]
        n_thoughts = len(positions)
        start = positions[0] if positions else -1
    return Example(input_ids, labels, n_thoughts, start)


class Method:
    """Base class: subclasses set ``name``, ``special_tokens`` and render problems."""

    name: ClassVar[str]
    special_tokens: ClassVar[tuple[str, ...]] = ()
    # True when the thought positions take the previous position's last hidden state as input
    # (Coconut); False when they are ordinary tokens (pause) or there are none.
    continuous: ClassVar[bool] = False
    thought_token: ClassVar[str | None] = None

    def __init__(self, cfg: MethodConfig, tokenizer):
        self.cfg = cfg
        self.tokenizer = tokenizer
        missing = [t for t in self.special_tokens if t not in tokenizer.get_vocab()]
        if missing:
            raise ValueError(f"method {self.name!r} needs special tokens {missing} in the tokenizer; "
                             "build the model with the method's special_tokens")
        self.token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in self.special_tokens}
        self.thought_id = self.token_ids[self.thought_token] if self.thought_token else None

    @classmethod
    def extra_tokens(cls, cfg: MethodConfig) -> tuple[str, ...]:
        """Vocabulary items this method needs beyond ``METHOD_TOKENS`` (Token Assorted's latent codes),
        added when a model is built or continued from another run."""
        return ()

    def prepare(self, records: list[TokenizedRecord], device: str = "cpu") -> list[TokenizedRecord]:
        """Once before training: attach whatever the rendering needs beyond the tokens (default: nothing)."""
        return records

    # -- schedule ----------------------------------------------------------------------------------
    def stage_at(self, epoch: int) -> int:
        """Curriculum stage of a (0-based) epoch; methods without a curriculum stay at 0."""
        return 0

    def reset_optimizer_at(self, epoch: int) -> bool:
        """Whether the optimizer starts fresh at this epoch: when the stage changes and
        ``method.reset_optimizer`` is on (epoch 0 always gets a new one anyway)."""
        return self.cfg.reset_optimizer and epoch > 0 and self.stage_at(epoch) != self.stage_at(epoch - 1)

    # -- rendering ---------------------------------------------------------------------------------
    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        raise NotImplementedError

    def prompt(self, record: TokenizedRecord, n_thoughts: int | None = None) -> Example:
        """What inference feeds the model before it starts generating."""
        raise NotImplementedError

    def default_thoughts(self) -> int:
        return 0

    def output_summary(self, texts: Sequence[str]) -> dict:
        """Method-specific statistics of generated texts, added to an evaluation's summary."""
        return {}
