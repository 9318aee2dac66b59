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
from ..tokenization import TokenizedRecord, tokenize_record, tokenize_records  # noqa: F401  (public here too)

IGNORE_INDEX = -100  # label value that gets no loss (PyTorch's cross-entropy default)


@dataclass
class Example:
    """Token ids ready for the model. ``labels`` is ``IGNORE_INDEX`` where there is no loss;
    ``thought_start`` is the index of the first continuous-thought position (-1 if none), which the
    collator aligns across a batch. Continuous-thought methods training a halting head set ``halt_from``,
    the position of the head's first decision (``<bot>``; decisions follow at each thought), and
    ``halt_needed``, the thoughts after which the problem's latent steps are used up
    (:mod:`latentcot.models.halting`)."""

    input_ids: list[int]
    labels: list[int]
    n_thoughts: int = 0
    thought_start: int = -1
    halt_from: int = -1
    halt_needed: int = -1


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


def _check_adaptive_keys(cfg: MethodConfig) -> None:
    """Ranges of the adaptive-thinking keys (a threshold of 1 never stops early, 0 always stops at once)."""
    checks = [("halt_threshold", 0.0 <= cfg.halt_threshold <= 1.0, "a probability in [0, 1]"),
              ("halt_weight", cfg.halt_weight >= 0.0, "at least 0"),
              ("max_thoughts", cfg.max_thoughts >= -1, "a count, or -1 for c_thought * max_latent_stage"),
              ("inference_thoughts", cfg.inference_thoughts == "auto" or cfg.inference_thoughts >= -1,
               "a count, -1 for the default, or auto")]
    for key, ok, expected in checks:
        if not ok:
            raise ValueError(f"config key 'method.{key}': expected {expected}, got {getattr(cfg, key)!r}")


class Method:
    """Base class: subclasses set ``name``, ``special_tokens`` and render problems."""

    name: ClassVar[str]
    special_tokens: ClassVar[tuple[str, ...]] = ()
    # True when the thought positions take the previous position's last hidden state as input
    # (Coconut); False when they are ordinary tokens (pause) or there are none.
    continuous: ClassVar[bool] = False
    thought_token: ClassVar[str | None] = None
    # False when prepare() ties side data to each problem's steps as written (Token Assorted's codes), so
    # the trainer may not rewrite the problems every epoch (data.shuffle_graph, data.relabel_nodes)
    records_can_change: ClassVar[bool] = True
    # True when train_example can put method.stage_target=frontier's labels after the thoughts
    renders_stage_targets: ClassVar[bool] = False

    def __init__(self, cfg: MethodConfig, tokenizer):
        self.cfg = cfg
        self.tokenizer = tokenizer
        missing = [t for t in self.special_tokens if t not in tokenizer.get_vocab()]
        if missing:
            raise ValueError(f"method {self.name!r} needs special tokens {missing} in the tokenizer; "
                             "build the model with the method's special_tokens")
        self.token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in self.special_tokens}
        self.thought_id = self.token_ids[self.thought_token] if self.thought_token else None
        _check_adaptive_keys(cfg)
        adaptive = "method.halting=true" if cfg.halting else (
            "method.inference_thoughts=auto" if cfg.inference_thoughts == "auto" else "")
        if cfg.stage_target != "steps" and not self.renders_stage_targets:
            raise ValueError(f"config key 'method.stage_target': {cfg.stage_target} is a Coconut curriculum's "
                             f"target; method {self.name!r} has no stages to supervise")
        if adaptive and not self.continuous:
            raise ValueError(f"config key '{adaptive.split('=')[0]}': {adaptive} needs a continuous-thought method "
                             f"(coconut, coconut_wo_curriculum); {self.name!r} has no continuous thoughts")

    @classmethod
    def extra_tokens(cls, cfg: MethodConfig) -> tuple[str, ...]:
        """Vocabulary items this method needs beyond ``METHOD_TOKENS`` (Token Assorted's latent codes),
        added when a model is built or continued from another run."""
        return ()

    def prepare(self, records: list[TokenizedRecord], device: str = "cpu",
                encoding: str = "text") -> list[TokenizedRecord]:
        """Once before training: attach whatever the rendering needs beyond the tokens (default: nothing).

        ``encoding`` is the ``data.encoding`` the records were written in, for methods whose side model
        (Token Assorted's VQ-VAE) was trained on one encoding and must not read another."""
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
