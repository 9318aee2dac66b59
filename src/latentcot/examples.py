"""What every method renders a problem into: an :class:`Example` of token ids and loss labels.

Its own module so that the model code (:mod:`latentcot.models.continuous`) can batch examples without
importing the methods, which import the model code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

IGNORE_INDEX = -100  # label value that gets no loss (PyTorch's cross-entropy default)


@dataclass
class Example:
    """Token ids ready for the model. ``labels`` is ``IGNORE_INDEX`` where there is no loss;
    ``thought_start`` is the index of the first continuous-thought position (-1 if none), which the
    collator aligns across a batch. Continuous-thought methods training a halting head set ``halt_from``,
    the position of the head's first decision (``<bot>``; decisions follow at each thought), and
    ``halt_needed``, the thoughts after which the problem's latent steps are used up
    (:mod:`latentcot.models.halting`).

    Methods with losses of their own say here what each problem adds to them: ``loss_counts`` (a term's
    name to this problem's share of its denominator: decisions, teacher tokens, 1 per problem, ...),
    ``companion`` (a second rendering of the same problem, CODI's teacher sequence) and ``step_targets``
    (SIM-CoT: per latent, the token ids of the written step its decoder must produce).

    ``thought_targets`` (``method.thought_targets``): per thought, the token ids of the set the position that
    feeds it should predict (empty: no target there); ``teacher_forced``: in training, each thought is fed the
    mean embedding of its target set instead of what the model computed (``thought_feedback=target_mixture``)."""

    input_ids: list[int]
    labels: list[int]
    n_thoughts: int = 0
    thought_start: int = -1
    halt_from: int = -1
    halt_needed: int = -1
    loss_counts: dict[str, int] = field(default_factory=dict)
    companion: "Example | None" = None
    step_targets: list[list[int]] | None = None
    thought_targets: list[list[int]] | None = None
    teacher_forced: bool = False

    @property
    def positions_needed(self) -> int:
        """The most positions the model runs this problem through: its own, or its companion's if longer."""
        return max(len(self.input_ids), self.companion.positions_needed if self.companion else 0)


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


def label_count(example: Example) -> int:
    """Targets this example contributes to the next-token loss (labels shifted by one)."""
    return sum(1 for label in example.labels[1:] if label != IGNORE_INDEX)
